"""The one homepage pipeline: every consumer (preview, audit, SHAP, serving) calls ``homepage_for``.

Candidates come from the active model (its top-M for the user's latest history), plus the
items that pin and reserve rules need; ``core.ranking.pipeline`` then applies the rules.
A user with no history gets the clearly labelled fallback: popular in their segment.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from core import store
from core.config import settings
from core.data.sequences import ShopSequences, load_sequences
from core.model_runs import ActiveModel, load_active_model
from core.ranking.pipeline import (
    Candidates,
    Homepage,
    UserContext,
    catalog_mask,
    list_metrics,
    model_only,
    rank_homepage,
)
from core.ranking.rule_sets import load_rule_set
from core.ranking.rules import RuleSet
from models.infer import pick_device

DEFAULT_K = 24
DEFAULT_M = 500


@dataclass
class HomepageView:
    """Everything the preview shows for one user: model-only and ruled lists, side by side."""

    user_id: str
    user: UserContext
    ruled: Homepage
    model_only: Homepage
    metrics: dict
    source: str  # which model (or fallback) produced the scores
    device: str
    scored_items: int
    score_ms: float
    history: pl.DataFrame = field(default_factory=pl.DataFrame)
    candidates: pl.DataFrame = field(default_factory=pl.DataFrame)  # attributes of every candidate

    def attrs_by_item(self) -> dict[str, dict]:
        """Attribute row per item shown in either list, by item id."""
        shown = {s.item_id for s in self.ruled.slots} | {s.item_id for s in self.model_only.slots}
        return {
            r["item_id"]: r for r in self.candidates.filter(pl.col("item_id").is_in(list(shown))).to_dicts()
        }

    def moved_items(self) -> set[str]:
        """Items of the ruled list that the rules put on another slot than the model did (or added)."""
        model_slot = {s.item_id: s.slot for s in self.model_only.slots}
        return {s.item_id for s in self.ruled.slots if model_slot.get(s.item_id) != s.slot}

    @property
    def scoring_note(self) -> str:
        return f"{self.scored_items:,} items scored on {self.device} in {self.score_ms:.1f} ms"


@dataclass
class ShopContext:
    """Per-process snapshot for ranking: the active model, item attributes aligned to dense ids, and
    every user's recent steps and attributes, so a homepage needs no database round trip.
    Refreshed when older than ``max_age_s`` (or on ``invalidate()``)."""

    active: ActiveModel
    attrs: pl.DataFrame  # dense order, row i = item i+1
    in_stock: np.ndarray  # (N+1,) bool, row 0 False
    embeddings: np.ndarray  # (N+1, D) float32
    now: datetime
    steps: ShopSequences
    by_user: dict[str, int]
    users: dict[str, dict]
    categories: np.ndarray  # (N+1,) object, leaf category path per dense id ("unknown" when missing)
    signature: tuple = ()
    unit_embeddings: np.ndarray | None = None  # (N+1, D) rows scaled to length 1, for cosine similarity
    loaded_at: float = field(default_factory=time.time)


_ctx_lock = threading.Lock()
_ctx: dict[str, ShopContext] = {}


def shop_now(con) -> datetime:
    """The shop clock: ``HS_NOW``, else the latest event (a log snapshot is previewed as of its end)."""
    fixed = settings().now
    if fixed:
        return datetime.fromisoformat(fixed)
    latest = con.execute("SELECT max(ts) FROM events").fetchall()[0][0]
    return latest or datetime.now()


def _item_attrs(con, active: ActiveModel, now: datetime) -> pl.DataFrame:
    items = active.catalog.items
    promos = con.sql(
        "SELECT item_id, category FROM promotions WHERE starts_at <= ? AND (ends_at IS NULL OR ends_at > ?)",
        params=[now, now],
    ).pl()
    promo_items = set(promos["item_id"].drop_nulls().to_list())
    promo_cats = [c for c in promos["category"].drop_nulls().to_list() if c]
    cats = items["category"].fill_null("")
    promoted = items["item_id"].is_in(list(promo_items))
    for c in promo_cats:
        promoted = promoted | (cats == c) | cats.str.starts_with(c + ".")
    return items.with_columns(
        promoted.fill_null(False).alias("promoted"),
        pl.col("in_stock").fill_null(True),
        pl.col("seller_tier").fill_null("unknown"),
    )


def invalidate() -> None:
    """Forget the snapshot (after an ingest, an activation or a catalog change in this process)."""
    with _ctx_lock:
        _ctx.clear()


def _store_signature(db_path=None) -> tuple:
    """What a snapshot depends on: loads, the active run, the catalog and user counts, promotions."""
    with store.connect(db_path) as con:
        return tuple(
            con.execute(
                """SELECT (SELECT coalesce(max(ingest_id), 0) FROM ingests),
                      (SELECT coalesce(max(run_id), '') FROM model_runs WHERE active),
                      (SELECT count(*) FROM items), (SELECT count(*) FROM users),
                      (SELECT count(*) FROM promotions)"""
            ).fetchall()[0]
        )


def shop_context(db_path=None, max_age_s: float = 30.0) -> ShopContext:
    key = str(db_path or settings().db_path)
    with _ctx_lock:
        hit = _ctx.get(key)
    if hit and time.time() - hit.loaded_at < max_age_s:
        return hit
    signature = _store_signature(db_path)
    if hit and hit.signature == signature:  # nothing changed: keep the snapshot, look again later
        hit.loaded_at = time.time()
        return hit
    active = load_active_model(db_path)
    with store.connect(db_path) as con:
        now = shop_now(con)
        attrs = _item_attrs(con, active, now)
        users = {r["user_id"]: r for r in con.sql("SELECT * FROM users").pl().to_dicts()}
    steps = load_sequences(db_path, catalog=active.catalog)
    emb = _embeddings(active)
    in_stock = np.concatenate([[False], attrs["in_stock"].to_numpy().astype(bool)])
    by_user = {u: i for i, u in enumerate(steps.user_ids)}
    categories = np.array(["unknown", *attrs["category"].fill_null("unknown").to_list()], dtype=object)
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
    ctx = ShopContext(
        active, attrs, in_stock, emb, now, steps, by_user, users, categories, signature, unit_embeddings=unit
    )
    with _ctx_lock:
        _ctx[key] = ctx
    return ctx


def _embeddings(active: ActiveModel) -> np.ndarray:
    emb = active.model.item_embeddings()
    if emb is not None:
        return emb.float().cpu().numpy()
    # the popularity fallback has no embeddings: category one-hots still let diversity work
    side = active.catalog.side
    cat = side.category.numpy()
    out = np.zeros((len(cat), max(1, int(side.n_categories))), dtype=np.float32)
    out[np.arange(len(cat)), cat] = 1.0
    return out


def _category_mix(ctx: ShopContext, items: np.ndarray) -> dict[str, float]:
    names = ctx.categories[items[items > 0]]
    if not len(names):
        return {}
    values, counts = np.unique(names, return_counts=True)
    return {str(v): float(c) / len(names) for v, c in zip(values, counts)}


def _pool_indices(ctx: ShopContext, rules: list, now: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids the user's ``rules`` need among the candidates whatever the model thinks: (pinned, pools)."""
    index = ctx.active.catalog.vocab.index
    pins: list[int] = []
    in_a_pool = None  # (N,) bool: the union of the pools' masks
    for rule in rules:
        if rule.kind == "pin":
            i = index.get(str(rule.params.get("item_id")))
            if i:
                pins.append(i)
        elif rule.kind in ("reserve", "fairness"):
            mask = catalog_mask(ctx.attrs, rule.condition, now)  # (N,) bool, cached
            in_a_pool = mask.copy() if in_a_pool is None else (in_a_pool | mask)
    pools = np.flatnonzero(in_a_pool) + 1 if in_a_pool is not None else np.zeros(0, dtype=np.int64)
    return np.unique(np.array(pins, dtype=np.int64)), pools.astype(np.int64)


def _candidates(
    ctx: ShopContext,
    scores: np.ndarray,
    purchased: np.ndarray,
    extra: tuple[np.ndarray, np.ndarray],
    m: int,
    exclude_purchased: bool,
) -> Candidates:
    masked = scores.copy()
    masked[~ctx.in_stock] = -np.inf
    if exclude_purchased and len(purchased):
        masked[purchased] = -np.inf
    masked[0] = -np.inf
    m = min(m, int(np.isfinite(masked).sum()))
    top = np.argpartition(-masked, m - 1)[:m] if m > 0 else np.zeros(0, dtype=np.int64)
    top = top[np.argsort(-masked[top], kind="stable")]
    ranks = np.zeros(len(scores), dtype=np.int64)
    ranks[top] = np.arange(1, len(top) + 1)
    pins, pools = extra
    # pool items: best by model score first, bounded so one broad rule cannot flood the candidates;
    # pinned items always (the pipeline reports a pinned item that is out of stock or blocked)
    pool = pools[(ranks[pools] == 0) & ctx.in_stock[pools]] if len(pools) else pools
    pool = pool[np.argsort(-scores[pool], kind="stable")][: max(m, 200)]
    pinned = pins[(ranks[pins] == 0) & ~np.isin(pins, pool)] if len(pins) else pins
    chosen = np.concatenate([top, pool, pinned]).astype(np.int64)
    return Candidates(
        item_ids=ctx.active.catalog.vocab.decode(chosen),
        scores=scores[chosen].astype(np.float64),
        model_ranks=ranks[chosen],
        embeddings=ctx.embeddings[chosen],
        attrs=ctx.attrs[(chosen - 1).tolist()],
        catalog_attrs=ctx.attrs,
        rows=chosen - 1,
    )


def _history_frame(ctx: ShopContext, steps: ShopSequences, limit: int = 50) -> pl.DataFrame:
    from models.base import EVENT_NAMES

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


def homepage_for(
    user_id: str,
    rule_set: RuleSet | None = None,
    k: int = DEFAULT_K,
    m: int = DEFAULT_M,
    db_path=None,
    with_history: bool = False,
) -> HomepageView:
    """The homepage this user gets, exactly as the storefront would build it
    (``with_history`` adds the user's recent steps for the preview)."""
    return homepages_for([user_id], rule_set, k=k, m=m, db_path=db_path, with_history=with_history)[0]


@dataclass
class Prepared:
    """One user's ranking inputs: context and candidates, before any rule is applied."""

    user: UserContext
    candidates: Candidates
    source: str
    history: pl.DataFrame
    now: datetime  # the shop clock the candidates were built at; rank with the same


def prepare(
    user_ids: list[str], rule_set: RuleSet, m: int = DEFAULT_M, db_path=None, with_history: bool = True
) -> tuple[list[Prepared], str, float, int]:
    """Candidates for many users from one batched forward pass: (prepared, device, ms per user, items)."""
    ctx = shop_context(db_path)
    model, catalog = ctx.active.model, ctx.active.catalog
    steps, by_user = ctx.steps, ctx.by_user
    max_len = model.max_len
    rows = [by_user.get(str(u)) for u in user_ids]
    known = [r for r in rows if r is not None]
    position = {r: n for n, r in enumerate(known)}
    device = pick_device(settings().device)
    t0 = time.perf_counter()
    scores = (
        model.score(steps.histories(known, max_len=max_len).to(device)).float().cpu().numpy()
        if known
        else np.zeros((0, catalog.n_items + 1))
    )
    score_ms = (time.perf_counter() - t0) * 1000.0 / max(1, len(known))
    attrs_by_user = ctx.users
    fallback = None
    pools: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # users under the same rules share their pools
    out = []
    for user_id, row in zip(user_ids, rows):
        attrs = attrs_by_user.get(str(user_id), {})
        if row is None:
            if fallback is None:
                fallback = _segment_popularity(ctx, db_path)
            user_scores, source = _fallback_scores(ctx, fallback, attrs)
            history_items = purchased = np.zeros(0, dtype=np.int64)
        else:
            user_scores, source = scores[position[row]], ctx.active.label
            history_items = steps.items[row]
            purchased = np.unique(history_items[steps.event_types[row] == 5])
        user = UserContext(
            user_id=str(user_id),
            attrs=attrs,
            category_mix=_category_mix(ctx, history_items),
            purchased=set(catalog.vocab.decode(purchased)),
        )
        # the same attributes the pipeline matches scopes on: a 'users:' scope needs the id even for a
        # shopper the users table does not know
        rules = rule_set.rules_for({"user_id": str(user_id), **attrs}, ctx.now)
        key = tuple(map(id, rules))
        if key not in pools:
            pools[key] = _pool_indices(ctx, rules, ctx.now)
        extra = pools[key]
        cands = _candidates(ctx, user_scores, purchased, extra, m, rule_set.exclude_purchased)
        history = (
            _history_frame(ctx, _one(steps, row)) if with_history and row is not None else pl.DataFrame()
        )
        out.append(Prepared(user, cands, source, history, ctx.now))
    return out, device.type, score_ms, catalog.n_items


def homepages_for(
    user_ids: list[str],
    rule_set: RuleSet | None = None,
    k: int = DEFAULT_K,
    m: int = DEFAULT_M,
    db_path=None,
    with_history: bool = False,
) -> list[HomepageView]:
    """Batched form: one forward pass for all users' scores, then the rules per user."""
    rule_set = rule_set if rule_set is not None else load_rule_set(db_path=db_path)
    prepared, device, score_ms, n_items = prepare(user_ids, rule_set, m, db_path, with_history)
    views = []
    for p in prepared:
        now = p.now
        ruled = rank_homepage(p.user, p.candidates, rule_set, k, now)
        views.append(
            HomepageView(
                user_id=p.user.user_id,
                user=p.user,
                ruled=ruled,
                model_only=model_only(p.user, p.candidates, k),
                metrics=list_metrics(ruled, p.candidates, rule_set, p.user, now),
                source=p.source,
                device=device,
                scored_items=n_items,
                score_ms=score_ms,
                history=p.history,
                candidates=p.candidates.attrs,
            )
        )
    return views


def user_steps(ctx: ShopContext, user_id: str) -> ShopSequences:
    """One user's steps from the snapshot (empty when the user has no history)."""
    row = ctx.by_user.get(str(user_id))
    if row is None:
        return ShopSequences([], [], [], [], [], ctx.active.catalog)
    return _one(ctx.steps, row)


def _one(steps: ShopSequences, row: int) -> ShopSequences:
    return ShopSequences(
        [steps.user_ids[row]],
        [steps.items[row]],
        [steps.event_types[row]],
        [steps.gaps[row]],
        [steps.ts[row]],
        steps.catalog,
    )


def _segment_popularity(ctx: ShopContext, db_path=None) -> pl.DataFrame:
    """Purchases-weighted popularity per segment over the last 30 days of the log."""
    return store.query(
        """
        SELECT coalesce(u.segment, 'all') AS segment, e.item_id,
               sum(CASE e.event_type WHEN 'purchase' THEN 5 WHEN 'add_to_cart' THEN 3 ELSE 1 END) AS weight
        FROM events e LEFT JOIN users u USING (user_id)
        WHERE e.ts >= ? - INTERVAL 30 DAY
        GROUP BY ALL
        """,
        [ctx.now],
        db_path=db_path,
    )


def _fallback_scores(ctx: ShopContext, popularity: pl.DataFrame, attrs: dict) -> tuple[np.ndarray, str]:
    segment = attrs.get("segment") or "all"
    rows = popularity.filter(pl.col("segment") == segment)
    label = f"fallback: popular in segment '{segment}' (no history for this user)"
    if rows.is_empty():
        rows = popularity.group_by("item_id").agg(pl.col("weight").sum())
        label = "fallback: popular in the whole shop (no history, no segment)"
    scores = np.full(ctx.active.catalog.n_items + 1, -1e9, dtype=np.float64)
    idx = ctx.active.catalog.vocab.encode(rows["item_id"].to_list())
    weights = rows["weight"].to_numpy().astype(float)
    ok = idx > 0
    scores[idx[ok]] = np.log1p(weights[ok])
    return scores, label
