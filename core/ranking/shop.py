"""The shop as ranking sees it, in two steps: reading and building.

- ``read_shop``: the store → ``ShopFrames``, plain frames (users, their recent steps, promotions, the
  segment popularity of the fallback, the trending counts, the shop clock). One unit of work on the database.
- ``build_context``: ``ShopFrames`` + the active model (with its catalog) → ``ShopContext``, the
  per-process snapshot every homepage is ranked from without any I/O. ``held_out_context`` does the same for
  a store whose shoppers' last steps are held out (the audit's copy, the calibration bench's cut): the
  model's count parts count again on the steps left, because a run counts every step (``core.training``).

Another source can supply the frames: the storefront API (``core.serve.context``) builds them from a
published release artifact's Parquet files and never opens the database, and then ranks exactly as the
preview does (``homepages_for(..., ctx=build_context(frames, active))``; tests/integration/test_shop_frames.py).
``shop_context`` keeps one snapshot per database, refreshed after 30 s when the store changed, or on
``invalidate()`` (the app calls it after an ingest or an activation).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from core import category_paths, store
from core.config import settings
from core.data.sequences import ShopSequences, read_steps, steps_from_frame
from core.model_runs import ActiveModel, load_active_model
from core.ranking.items import ItemTable
from core.training import every_step
from models.base import EVENT_NAMES

# purchases-weighted popularity per segment over the last 30 days: the fallback of shoppers without history
POPULARITY_SQL = """
    SELECT coalesce(u.segment, 'all') AS segment, e.item_id,
           sum(CASE e.event_type WHEN 'purchase' THEN 5 WHEN 'add_to_cart' THEN 3 ELSE 1 END) AS weight
    FROM events e LEFT JOIN users u USING (user_id)
    WHERE e.ts >= ? - INTERVAL 30 DAY
    GROUP BY ALL
"""
TRENDING_DAYS = 7  # the window of the "Trending in" row
# events per item over the trending window to the shop clock
TRENDING_SQL = """
    SELECT item_id, count(*) AS events FROM events WHERE ts >= ? GROUP BY item_id ORDER BY item_id
"""
TRENDING_SCHEMA = {"item_id": pl.Utf8, "events": pl.Int64}


@dataclass
class ShopFrames:
    """What ranking reads from a shop besides the model and its catalog, as plain frames."""

    now: datetime  # the shop clock
    users: pl.DataFrame  # user_id + attributes (region, device, segment, …)
    steps: (
        pl.DataFrame
    )  # user_id, items, evs, ts: each user's recent steps (``core.data.sequences.read_steps``)
    promotions: pl.DataFrame  # promotion_id, item_id, category, discount, starts_at, ends_at
    popularity: pl.DataFrame  # segment, item_id, weight
    # item_id, events: the last TRENDING_DAYS to the shop clock (the trending row)
    trending: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=TRENDING_SCHEMA))
    signature: tuple = ()  # what the frames were read from (a store's counts), to tell when to read again


@dataclass
class ShopContext:
    """Per-process snapshot for ranking: the active model, item attributes aligned to dense ids, and every
    user's recent steps and attributes, so a homepage needs no database round trip."""

    active: ActiveModel
    attrs: pl.DataFrame  # dense order, row i = item i+1 (with ``promoted`` at the shop clock)
    table: ItemTable  # ``attrs`` with the rules' caches
    in_stock: np.ndarray  # (N+1,) bool, row 0 False
    embeddings: np.ndarray  # (N+1, D) float32
    unit_embeddings: np.ndarray  # (N+1, D) rows scaled to length 1, for cosine similarity
    now: datetime
    steps: ShopSequences
    by_user: dict[str, int]
    users: dict[str, dict]
    categories: np.ndarray  # (N+1,) object, leaf category path per dense id ("unknown" when missing)
    category_names: np.ndarray  # (C,) object, the distinct ``categories``, sorted
    category_codes: np.ndarray  # (N+1,) int, each dense id's position in ``category_names``
    popularity: pl.DataFrame  # segment, item_id, weight
    promotions: pl.DataFrame  # item_id, category, starts_at, ends_at: every promotion, active or not
    trending: pl.DataFrame  # item_id, events: the last TRENDING_DAYS to the shop clock
    signature: tuple = ()
    loaded_at: float = field(default_factory=time.time)
    # values derived from the item side only (e.g. the trending items of a category), computed on first use;
    # ``dataclasses.replace`` hands the same dict to a per-visit view, whose item side is the snapshot's
    derived: dict = field(default_factory=dict, repr=False, compare=False)


def shop_now(con) -> datetime:
    """The shop clock: ``HS_NOW``, else the latest event (a log snapshot is previewed as of its end)."""
    fixed = settings().now
    if fixed:
        return datetime.fromisoformat(fixed)
    latest = con.execute("SELECT max(ts) FROM events").fetchall()[0][0]
    return latest or datetime.now()


def store_signature(con) -> tuple:
    """What a snapshot depends on: loads, the active run, the catalog and user counts, promotions."""
    return tuple(
        con.execute(
            """SELECT (SELECT coalesce(max(ingest_id), 0) FROM ingests),
                  (SELECT coalesce(max(run_id), '') FROM model_runs WHERE active),
                  (SELECT count(*) FROM items), (SELECT count(*) FROM users),
                  (SELECT count(*) FROM promotions)"""
        ).fetchall()[0]
    )


def read_shop(db_path=None) -> ShopFrames:
    """The store → ShopFrames, in one unit of work."""
    with store.connect(db_path) as con:
        signature = store_signature(con)
        now = shop_now(con)
        return ShopFrames(
            now=now,
            users=con.sql("SELECT * FROM users").pl(),
            steps=read_steps(con),
            promotions=con.sql(
                "SELECT promotion_id, item_id, category, discount, starts_at, ends_at FROM promotions"
            ).pl(),
            popularity=con.sql(POPULARITY_SQL, params=[now]).pl(),
            trending=con.sql(TRENDING_SQL, params=[now - timedelta(days=TRENDING_DAYS)]).pl(),
            signature=signature,
        )


def active_promotions(promotions: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """The promotions running at ``now``."""
    return promotions.filter(
        (pl.col("starts_at") <= now) & (pl.col("ends_at").is_null() | (pl.col("ends_at") > now))
    )


def item_attributes(items: pl.DataFrame, promotions: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """The catalog's items with ``promoted`` (under a promotion active at ``now``, by item or category)."""
    active = active_promotions(promotions, now)
    promoted = items["item_id"].is_in(
        active["item_id"].drop_nulls().unique().to_list()
    ) | category_paths.under_series(
        items["category"], [c for c in active["category"].drop_nulls().to_list() if c]
    )
    return items.with_columns(
        promoted.fill_null(False).alias("promoted"),
        pl.col("in_stock").fill_null(True),
        pl.col("seller_tier").fill_null("unknown"),
    )


def _embeddings(active: ActiveModel) -> np.ndarray:
    emb = active.model.item_embeddings()
    if emb is not None:
        return emb.float().cpu().numpy()
    # a model without item vectors (the popularity fallback): category one-hots still let diversity work
    side = active.catalog.side
    cat = side.category.numpy()
    out = np.zeros((len(cat), max(1, int(side.n_categories))), dtype=np.float32)
    out[np.arange(len(cat)), cat] = 1.0
    return out


def build_context(frames: ShopFrames, active: ActiveModel, steps: ShopSequences | None = None) -> ShopContext:
    """ShopFrames + the active model → the snapshot homepages are ranked from (no I/O); ``steps``: the
    frames' steps in the catalog's ids, when the caller has them already."""
    attrs = item_attributes(active.catalog.items, frames.promotions, frames.now)
    steps = steps if steps is not None else steps_from_frame(frames.steps, active.catalog)
    emb = _embeddings(active)
    categories = np.array(["unknown", *attrs["category"].fill_null("unknown").to_list()], dtype=object)
    names, codes = np.unique(categories, return_inverse=True)
    return ShopContext(
        active=active,
        attrs=attrs,
        table=ItemTable(attrs),
        in_stock=np.concatenate([[False], attrs["in_stock"].to_numpy().astype(bool)]),
        embeddings=emb,
        unit_embeddings=emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9),
        now=frames.now,
        steps=steps,
        by_user={u: i for i, u in enumerate(steps.user_ids)},
        users={r["user_id"]: r for r in frames.users.to_dicts()},
        categories=categories,
        category_names=names,
        category_codes=codes.astype(np.int64),
        popularity=frames.popularity,
        promotions=frames.promotions,
        trending=frames.trending,
        signature=frames.signature,
    )


_recount_lock = threading.Lock()


def held_out_context(frames: ShopFrames, active: ActiveModel) -> ShopContext:
    """``build_context`` for frames whose shoppers' last steps are held out to measure the lists against:
    the active model with its count parts ``recounted`` on these frames' steps (the neural parts never saw
    a shopper's last step), so no list is ranked from counts of the very steps it is measured on. The
    active model itself, which every session shares, is left as it is."""
    steps = steps_from_frame(frames.steps, active.catalog)
    with _recount_lock:  # one at a time per process: EASE's fit holds three item × item matrices
        model = active.model.recounted(every_step(steps))
    return build_context(frames, replace(active, model=model), steps)  # the same catalog: the same steps


_lock = threading.Lock()
_contexts: dict[str, ShopContext] = {}


def invalidate() -> None:
    """Forget the snapshot (after an ingest, an activation or a catalog change in this process)."""
    with _lock:
        _contexts.clear()


def shop_context(db_path=None, max_age_s: float = 30.0) -> ShopContext:
    """This process's snapshot of the store's shop, read again when older than ``max_age_s`` and changed."""
    key = str(db_path or settings().db_path)
    with _lock:
        hit = _contexts.get(key)
    if hit and time.time() - hit.loaded_at < max_age_s:
        return hit
    if hit:
        with store.connect(db_path) as con:
            if store_signature(con) == hit.signature:  # nothing changed: keep it, look again later
                hit.loaded_at = time.time()
                return hit
    ctx = build_context(read_shop(db_path), load_active_model(db_path))
    with _lock:
        _contexts[key] = ctx
    return ctx


def user_steps(ctx: ShopContext, user_id: str) -> ShopSequences:
    """One user's steps from the snapshot (empty when the user has no history)."""
    row = ctx.by_user.get(str(user_id))
    if row is None:
        return ShopSequences([], [], [], [], [], ctx.active.catalog)
    return one_user(ctx.steps, row)


def one_user(steps: ShopSequences, row: int) -> ShopSequences:
    return ShopSequences(
        [steps.user_ids[row]],
        [steps.items[row]],
        [steps.event_types[row]],
        [steps.gaps[row]],
        [steps.ts[row]],
        steps.catalog,
    )


def history_frame(ctx: ShopContext, steps: ShopSequences, limit: int = 50) -> pl.DataFrame:
    """One user's latest steps for the preview: when, what, which item, and the pause before the next."""
    if not len(steps):
        return pl.DataFrame()
    items, evs, ts = steps.items[0][-limit:], steps.event_types[0][-limit:], steps.ts[0][-limit:]
    rows = ctx.attrs[(items - 1).tolist()].select("item_id", "title", "category")
    dwell = np.diff(ts, append=np.nan)
    return rows.with_columns(
        pl.Series("ts", [datetime.fromtimestamp(t) for t in ts]),
        pl.Series("event", [EVENT_NAMES.get(int(e), "?") for e in evs]),
        pl.Series("seconds_to_next", dwell),
    ).select("ts", "event", "item_id", "title", "category", "seconds_to_next")
