"""What the storefront API answers, as plain JSON-ready dicts: the domain logic behind each endpoint.

Every answer is computed from ONE served release (``ServedRelease``, picked once per request) with the
preview's ranking code — ``core.ranking.homepage.homepages_for`` for the "For you" row and
``core.ranking.rows`` for the others, similar items and search — and carries that release's id. No
request changes any state: a visit's events and device make a per-request view of the snapshot
(``core.serve.visit``).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from core.ranking import rows
from core.ranking.homepage import homepages_for
from core.ranking.limits import DEFAULT_K
from core.ranking.reasons import Reason
from core.ranking.shop import ShopContext
from core.ranking.state import Homepage
from core.serve.context import ServedRelease
from core.serve.visit import VisitEvent, visit_context

ROW_K = 12  # items per row besides "For you" (the preview's rows)
FOR_YOU, TRENDING, DEALS = "for_you", "trending", "deals"
INTERESTS = ("interest_1", "interest_2", "interest_3")  # the rows per interest, heaviest interest first
ROW_IDS = (FOR_YOU, *INTERESTS, TRENDING, DEALS)


def _number(x) -> float | None:
    """A JSON number (None for a missing, infinite or NaN value)."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _json_value(v):
    if isinstance(v, bool | int | str) or v is None:
        return v
    if isinstance(v, float):
        return _number(v)
    if isinstance(v, list | tuple | set):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return v.isoformat() if isinstance(v, datetime) else str(v)


_PLAIN_REASONS: dict[tuple, dict] = {}  # (code, rule_id) → its dict, for reasons without params


def reason_dict(reason: Reason) -> dict:
    """``Reason.to_dict`` with the badge label, params made JSON-safe. A reason without params (most
    slots' "model") is built once: the answers are serialized, never changed, so they may share it."""
    if not reason.params:
        key = (reason.code, reason.rule_id)
        hit = _PLAIN_REASONS.get(key)
        if hit is None:
            hit = _PLAIN_REASONS[key] = {**reason.to_dict(), "label": reason.label, "params": {}}
        return hit
    out = reason.to_dict()
    return {**out, "label": reason.label, "params": _json_value(out["params"])}


def _slot(row: str, position: int, attrs: dict, score, reasons: list[Reason]) -> dict:
    return {
        "row": row,
        "position": position,
        "item_id": attrs["item_id"],
        "title": attrs.get("title") or "",
        "price": _number(attrs.get("price")),
        "category": attrs.get("category"),
        "promoted": bool(attrs.get("promoted")),
        "score": _number(score),
        "reasons": [reason_dict(r) for r in reasons],
    }


SLOT_ATTRIBUTES = ("item_id", "title", "price", "category", "promoted")


def item_rows(ctx: ShopContext) -> list[dict]:
    """The snapshot's items as dicts of what a slot shows (index i = dense id i+1), built once per release
    (kept in ``ctx.derived``, which a visit's view shares): no polars frame is gathered per request."""
    hit = ctx.derived.get("slot_attributes")
    if hit is None:
        hit = ctx.derived["slot_attributes"] = ctx.attrs.select(SLOT_ATTRIBUTES).to_dicts()
    return hit


def row_slots(row_id: str, row: rows.Row, ctx: ShopContext) -> list[dict]:
    """A ``core.ranking.rows.Row`` as API slots."""
    items = item_rows(ctx)
    reasons = row.reasons or [[] for _ in range(len(row.dense))]
    return [
        _slot(row_id, n + 1, items[d - 1], score, why)
        for n, (d, score, why) in enumerate(zip(row.dense.tolist(), row.scores.tolist(), reasons))
    ]


def for_you_slots(page: Homepage, ctx: ShopContext) -> list[dict]:
    """The homepage's slots with their items' attributes."""
    items = item_rows(ctx)
    dense = ctx.active.catalog.vocab.encode(page.item_ids).tolist()
    return [_slot(FOR_YOU, s.slot, items[d - 1], s.model_score, s.reasons) for s, d in zip(page.slots, dense)]


def homepage(
    release: ServedRelease,
    user_id: str,
    k: int = DEFAULT_K,
    device: str | None = None,
    events: list[VisitEvent] | None = None,
    row_k: int = ROW_K,
) -> dict:
    """The shopper's homepage from this release: "For you" (``k`` slots, the preview's homepage, reasons
    and all), then up to three rows per interest ("Because you viewed keyboards"), "Trending in …" and
    "Deals for you" (``row_k`` each; a row the shopper has no basis for is left out). ``events``: this
    visit's, not yet in the snapshot."""
    ctx = visit_context(release.ctx, user_id, events, device)
    # one forward pass serves "For you" and the rows: the same history, so the same scores as the preview's
    scored = rows.user_scores(ctx, user_id)
    known = (scored.scores[None, :], scored.ms) if user_id in ctx.by_user else (np.zeros((0, 0)), 0.0)
    view = homepages_for([user_id], release.rule_set, k=k, ctx=ctx, scored=known)[0]
    slots = for_you_slots(view.ruled, ctx)
    titles = [{"row": FOR_YOU, "title": "For you"}]
    if row_k:
        per_interest = rows.rows_per_interest(user_id, row_k, None, release.rule_set, ctx, scored)
        others = (
            *zip(INTERESTS, per_interest),
            (TRENDING, rows.trending_in_top_category(user_id, row_k, None, release.rule_set, ctx, scored)),
            (DEALS, rows.deals_for_you(user_id, row_k, None, release.rule_set, ctx, scored)),
        )
        for row_id, row in others:
            if row is not None and len(row.dense):
                titles.append({"row": row_id, "title": row.title})
                slots.extend(row_slots(row_id, row, ctx))
    return {
        "release_id": release.release_id,
        "user_id": user_id,
        "known_shopper": user_id in release.ctx.by_user or user_id in release.ctx.users,
        "events_applied": len(events or ()),
        "source": view.source,
        "rows": titles,
        "slots": slots,
        "conflicts": [reason_dict(c) for c in view.ruled.conflicts],
    }


def similar(release: ServedRelease, item_id: str, k: int = ROW_K, user_id: str | None = None) -> dict:
    """A product page's similar items (NotFoundError for an item the release does not know)."""
    row = rows.similar_items(item_id, k, rule_set=release.rule_set, user_id=user_id, ctx=release.ctx)
    return {"release_id": release.release_id, "item_id": item_id, "title": row.title,
            "slots": row_slots("similar", row, release.ctx)}  # fmt: skip


def search(release: ServedRelease, query: str, user_id: str | None = None, k: int = ROW_K) -> dict:
    """Titles holding every word of ``query``, ordered for the shopper by the model (under the rules)."""
    row = rows.personalized_search(user_id or "", query, k, rule_set=release.rule_set, ctx=release.ctx)
    return {"release_id": release.release_id, "query": query, "user_id": user_id,
            "slots": row_slots("search", row, release.ctx)}  # fmt: skip


def release_info(release: ServedRelease, upcoming: list | None = None) -> dict:
    """What is served: the release, its rule set and model, its shop clock, and what goes live next."""
    entry, manifest = release.entry, release.artifact.manifest
    time_text = lambda t: t.isoformat() if t else None  # noqa: E731
    return {
        "release_id": entry.release_id,
        "kind": entry.kind,
        "content_hash": entry.content_hash,
        "published_at": time_text(entry.published_at),
        "starts_at": time_text(entry.starts_at),
        "rollback_of": entry.rollback_of,
        "rule_set": {
            "id": release.rule_set.rule_set_id,
            "version": release.rule_set.version,
            "rules": len(release.rule_set.rules),
        },  # fmt: skip
        "model": {
            "run_id": release.ctx.active.run_id,
            "kind": manifest["model"].get("kind"),
            "label": release.ctx.active.label,
        },  # fmt: skip
        "shop_clock": release.ctx.now.isoformat(),
        "items": release.ctx.active.catalog.n_items,
        "shoppers": len(release.ctx.by_user),
        "loaded_seconds": round(release.load_seconds, 3),
        "upcoming": [
            {"release_id": e.release_id, "starts_at": time_text(e.effective_at)} for e in upcoming or ()
        ],
    }
