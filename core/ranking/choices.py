"""What the Rules page's forms offer, from the shop snapshot (no SQL per keystroke): items found by title or
id (promoted ones marked), the running promotions and their items, the catalog's categories, brands,
sellers and seller tiers, and the user attributes a segment can be built from."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from core import category_paths
from core.ranking.shop import active_promotions, shop_context

SEARCH_LIMIT = 40  # items offered per search
VALUES_LIMIT = 200  # distinct values offered per user attribute (more: the attribute is an id, not a segment)
NOT_SEGMENTS = ("user_id", "first_seen")


@dataclass(frozen=True)
class ItemChoice:
    item_id: str
    title: str
    brand: str
    category: str
    promoted: bool
    in_stock: bool

    @property
    def label(self) -> str:
        mark = "★ promoted · " if self.promoted else ""
        stock = "" if self.in_stock else " · out of stock"
        return f"{mark}{self.item_id} — {self.title or 'untitled'} ({self.brand or 'no brand'}){stock}"


def _choices(frame: pl.DataFrame) -> list[ItemChoice]:
    return [
        ItemChoice(
            r["item_id"],
            r["title"] or "",
            r["brand"] or "",
            r["category"] or "",
            bool(r["promoted"]),
            bool(r["in_stock"]),
        )
        for r in frame.select("item_id", "title", "brand", "category", "promoted", "in_stock").to_dicts()
    ]


def search_items(
    query: str, promoted_only: bool = False, limit: int = SEARCH_LIMIT, db_path=None
) -> list[ItemChoice]:
    """Items whose id or title contains every word of ``query`` (an exact id first, then promoted items,
    then by id); with ``promoted_only``, only items under a running promotion."""
    attrs = shop_context(db_path).attrs
    words = [w for w in query.lower().split() if w]
    text = (attrs["item_id"] + " " + attrs["title"].fill_null("")).str.to_lowercase()
    hit = pl.Series([True] * attrs.height)
    for w in words:
        hit = hit & text.str.contains(w, literal=True)
    if promoted_only:
        hit = hit & attrs["promoted"]
    found = attrs.filter(hit).with_columns((pl.col("item_id") == query.strip()).alias("exact"))
    found = found.sort(["exact", "promoted", "item_id"], descending=[True, True, False]).head(limit)
    return _choices(found)


def items_by_id(item_ids: list[str], db_path=None) -> list[ItemChoice]:
    attrs = shop_context(db_path).attrs
    return _choices(attrs.filter(pl.col("item_id").is_in(list(item_ids))))


@dataclass(frozen=True)
class PromotionChoice:
    promotion_id: str
    label: str
    item_ids: tuple[str, ...]


def promotions(db_path=None) -> list[PromotionChoice]:
    """The promotions running at the shop clock, each with the items it covers (by item or by category)."""
    ctx = shop_context(db_path)
    out = []
    for p in active_promotions(ctx.promotions, ctx.now).sort("promotion_id").to_dicts():
        if p["item_id"]:
            ids = (p["item_id"],)
            what = f"item {p['item_id']}"
        else:
            under = category_paths.under_series(ctx.attrs["category"], [p["category"] or ""])
            ids = tuple(ctx.attrs.filter(under)["item_id"].to_list())
            what = f"category {p['category']} ({len(ids)} items)"
        discount = f"{p['discount']:.0%} off · " if p["discount"] else ""
        out.append(PromotionChoice(p["promotion_id"], f"{p['promotion_id']} · {discount}{what}", ids))
    return out


def catalog_values(db_path=None) -> dict[str, list[str]]:
    """The values a condition can name: every category path and its prefixes, brands, sellers, tiers."""
    attrs = shop_context(db_path).attrs
    cats = sorted(
        {p for c in attrs["category"].drop_nulls().unique().to_list() for p in category_paths.prefixes(c)}
    )
    values = lambda col: sorted(v for v in attrs[col].drop_nulls().unique().to_list() if v)  # noqa: E731
    return {
        "category": cats,
        "brand": values("brand"),
        "seller_id": values("seller_id"),
        "seller_tier": values("seller_tier"),
    }


def user_attributes(db_path=None) -> dict[str, list[str]]:
    """Attribute -> its values, for the segment builder (attributes with few enough distinct values)."""
    users = shop_context(db_path).users.values()
    out: dict[str, set[str]] = {}
    for attrs in users:
        for key, v in attrs.items():
            if key not in NOT_SEGMENTS and v is not None and isinstance(v, str):
                out.setdefault(key, set()).add(v)
    return {k: sorted(v) for k, v in sorted(out.items()) if len(v) <= VALUES_LIMIT}


def known_users(user_ids: list[str], db_path=None) -> list[str]:
    """Which of these ids the shop knows (the rest would never match a shopper list)."""
    users = shop_context(db_path).users
    return [u for u in user_ids if u in users]
