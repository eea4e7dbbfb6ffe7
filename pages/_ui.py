"""Small view helpers shared by pages: product cards with generated thumbnail tiles, and reason badges whose
words and colour come from the reason's code (``core.ranking.reasons``)."""

from __future__ import annotations

import hashlib
import html

import streamlit as st

from core.category_paths import leaf, top_level
from core.ranking.reasons import Reason

CARD_CSS = """
<style>
.hs-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin:4px 0 12px}
.hs-card{border:1px solid #E3E5EA;border-radius:10px;padding:8px;background:#fff;font-size:12px;line-height:1.3}
.hs-card.moved{border:2px solid #E4572E;box-shadow:0 0 0 2px #FBD9CF}
.hs-tile{height:84px;border-radius:8px;display:flex;align-items:center;justify-content:center;
  color:#fff;font-weight:700;font-size:20px;margin-bottom:6px;position:relative}
.hs-slot{position:absolute;top:4px;left:6px;font-size:11px;background:rgba(0,0,0,.35);padding:1px 6px;border-radius:8px}
.hs-title{font-weight:600;color:#1F2430;height:32px;overflow:hidden}
.hs-meta{color:#5B6170}
.hs-price{font-weight:700;color:#1F2430;margin-top:2px}
.hs-badge{display:inline-block;background:#F1F2F5;color:#333;border-radius:6px;padding:0 5px;margin:2px 2px 0 0;font-size:10px}
</style>
"""


def _tile_color(category: str) -> str:
    digest = hashlib.sha1(top_level(category, "").encode()).digest()
    hue = digest[0] * 360 // 256
    return f"hsl({hue},55%,48%)"


def _initials(title: str, category: str) -> str:
    words = [w for w in (leaf(category) if category else title or "?").replace("_", " ").split() if w]
    return "".join(w[0] for w in words[:2]).upper() or "?"


def _text_on(tone: str) -> str:
    """Dark text on a light badge, white on a dark one."""
    r, g, b = (int(tone.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return "#fff" if 0.299 * r + 0.587 * g + 0.114 * b < 128 else "#333"


def badges(reasons: list[Reason]) -> list[tuple[str, str, str]]:
    """(label, colour, code) per distinct label, read from each reason's code."""
    seen, out = set(), []
    for r in reasons:
        if r.label not in seen:
            seen.add(r.label)
            out.append((r.label, r.code.tone, r.code.value))
    return out


def badge_html(label: str, tone: str = "#F1F2F5", code: str = "") -> str:
    esc = html.escape
    return (
        f'<span class="hs-badge" data-code="{esc(code)}" style="background:{esc(tone)};color:{_text_on(tone)}">'
        f"{esc(label)}</span>"
    )


def card_html(
    item: dict, slot: int | None = None, tags: list[tuple[str, str, str]] | None = None, moved: bool = False
) -> str:
    """A product card; ``tags``: (label, colour, code) badges (see ``badges``)."""
    esc = lambda v: html.escape(str(v if v is not None else ""))  # noqa: E731
    tag_html = "".join(badge_html(*t) for t in (tags or []))
    price = item.get("price")
    price_text = f"${price:,.2f}" if isinstance(price, (int, float)) and price == price else ""
    slot_text = f'<span class="hs-slot">#{slot}</span>' if slot else ""
    return (
        f'<div class="hs-card{" moved" if moved else ""}" data-item="{esc(item.get("item_id"))}">'
        f'<div class="hs-tile" style="background:{_tile_color(item.get("category", ""))}">{slot_text}'
        f"{esc(_initials(item.get('title', ''), item.get('category', '')))}</div>"
        f'<div class="hs-title">{esc(item.get("title") or item.get("item_id"))}</div>'
        f'<div class="hs-meta">{esc(item.get("category") or "uncategorised")}</div>'
        f'<div class="hs-meta">{esc(item.get("brand") or "")} · seller {esc(item.get("seller_id") or "?")}</div>'
        f'<div class="hs-price">{price_text}</div>{tag_html}</div>'
    )


def card_grid(cards: list[str]) -> None:
    st.markdown(CARD_CSS + '<div class="hs-grid">' + "".join(cards) + "</div>", unsafe_allow_html=True)
