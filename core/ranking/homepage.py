"""The one homepage pipeline: every consumer (preview, audit, SHAP, serving) calls ``homepages_for``.

Candidates come from the active model (its top-M for the user's latest history), plus the items that the
rules need (``core.ranking.candidates``); ``core.ranking.pipeline`` then applies the rules. A user with no
history gets the clearly labelled fallback: popular in their segment. The shop snapshot is
``core.ranking.shop``; ``invalidate`` and ``shop_context`` are re-exported here for the pages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from core.errors import InputError
from core.ranking.candidates import Needed, build_candidates, needed_items
from core.ranking.limits import DEFAULT_K, DEFAULT_M, SLOT_MAX
from core.ranking.metrics import list_metrics
from core.ranking.pipeline import model_only, rank_homepage
from core.ranking.rule_sets import load_rule_set
from core.ranking.rules import RuleSet
from core.ranking.shop import ShopContext, history_frame, invalidate, one_user, shop_context, user_steps
from core.ranking.state import Candidates, Homepage, UserContext

PURCHASE = 5  # the event code of a purchase (models.base.EVENT_TYPES)

__all__ = [
    "DEFAULT_K",
    "DEFAULT_M",
    "HomepageView",
    "homepage_for",
    "homepages_for",
    "invalidate",
    "prepare",
    "shop_context",
    "user_steps",
]


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
    pool: Candidates
    history: pl.DataFrame = field(default_factory=pl.DataFrame)

    @property
    def candidates(self) -> pl.DataFrame:
        """Attributes of every candidate."""
        return self.pool.attrs

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
class Prepared:
    """One user's ranking inputs: context and candidates, before any rule is applied."""

    user: UserContext
    candidates: Candidates
    source: str
    history: pl.DataFrame
    now: datetime  # the shop clock the candidates were built at; rank with the same


def _category_mix(ctx: ShopContext, items: np.ndarray) -> dict[str, float]:
    codes = ctx.category_codes[items[items > 0]]
    if not len(codes):
        return {}
    counts = np.bincount(codes)
    # names in sorted order, as np.unique over the names themselves would give them
    return {str(ctx.category_names[v]): float(counts[v]) / len(codes) for v in np.flatnonzero(counts)}


def model_scores(ctx: ShopContext, rows: list[int]) -> tuple[np.ndarray, float]:
    """(len(rows), N+1) scores from one batched forward pass, and the ms it took per user."""
    model = ctx.active.model
    t0 = time.perf_counter()
    if rows:
        histories = ctx.steps.histories(rows, max_len=model.max_len).to(model.device)
        scores = model.score(histories).float().cpu().numpy()
    else:
        scores = np.zeros((0, ctx.active.catalog.n_items + 1))
    return scores, (time.perf_counter() - t0) * 1000.0 / max(1, len(rows))


def _fallback_scores(ctx: ShopContext, attrs: dict) -> tuple[np.ndarray, str]:
    """Popular in the shopper's segment (else in the whole shop), for a shopper without history."""
    segment = attrs.get("segment") or "all"
    rows = ctx.popularity.filter(pl.col("segment") == segment)
    label = f"fallback: popular in segment '{segment}' (no history for this user)"
    if rows.is_empty():
        rows = ctx.popularity.group_by("item_id").agg(pl.col("weight").sum())
        label = "fallback: popular in the whole shop (no history, no segment)"
    scores = np.full(ctx.active.catalog.n_items + 1, -1e9, dtype=np.float64)
    idx = ctx.active.catalog.vocab.encode(rows["item_id"].to_list())
    weights = rows["weight"].to_numpy().astype(float)
    ok = idx > 0
    scores[idx[ok]] = np.log1p(weights[ok])
    return scores, label


def user_context(ctx: ShopContext, user_id: str, row: int | None) -> tuple[UserContext, np.ndarray]:
    """The shopper as the rules see them (attributes, category mix, purchases), and their purchased dense
    ids; ``row``: their row in ``ctx.steps`` (None: no history)."""
    attrs = ctx.users.get(user_id, {})
    if row is None:
        history_items = purchased = np.zeros(0, dtype=np.int64)
    else:
        history_items = ctx.steps.items[row]
        purchased = np.unique(history_items[ctx.steps.event_types[row] == PURCHASE])
    mix = _category_mix(ctx, history_items)
    return UserContext(user_id, attrs, mix, set(ctx.active.catalog.vocab.decode(purchased))), purchased


def needed_for(ctx: ShopContext, rule_set: RuleSet, user: UserContext, cache: dict) -> Needed:
    """The items this shopper's rules need among the candidates; shoppers under the same rules share them
    through ``cache``."""
    # the attributes the pipeline matches scopes on: a 'users:' scope needs the id even for a shopper the
    # users table does not know
    rules = rule_set.rules_for({"user_id": user.user_id, **user.attrs}, ctx.now)
    key = tuple(map(id, rules))
    if key not in cache:
        cache[key] = needed_items(ctx, rules, ctx.now)
    return cache[key]


def prepare(
    user_ids: list[str],
    rule_set: RuleSet,
    m: int = DEFAULT_M,
    db_path=None,
    with_history: bool = True,
    ctx: ShopContext | None = None,
    scored: tuple[np.ndarray, float] | None = None,
) -> tuple[list[Prepared], str, float, int]:
    """Candidates for many users from one batched forward pass: (prepared, device, ms per user, items).
    ``ctx``: a snapshot built elsewhere (``shop.build_context`` from other frames); default the store's.
    ``scored``: the model's scores of the users ``ctx`` has steps for, in order, (n, N+1), and the ms per
    user, when the caller already computed them (the storefront scores once for a homepage and its rows)."""
    ctx = ctx or shop_context(db_path)
    catalog, steps = ctx.active.catalog, ctx.steps
    rows = [ctx.by_user.get(str(u)) for u in user_ids]
    known = [r for r in rows if r is not None]
    position = {r: n for n, r in enumerate(known)}
    scores, score_ms = scored if scored is not None else model_scores(ctx, known)
    if len(scores) != len(known):
        raise ValueError(f"{len(scores)} rows of scores for {len(known)} shoppers with steps")
    needed: dict[tuple, Needed] = {}  # users under the same rules share their pools
    out = []
    for user_id, row in zip(user_ids, rows):
        user, purchased = user_context(ctx, str(user_id), row)
        if row is None:
            user_scores, source = _fallback_scores(ctx, user.attrs)
        else:
            user_scores, source = scores[position[row]], ctx.active.label
        wanted = needed_for(ctx, rule_set, user, needed)
        cands = build_candidates(ctx, user_scores, purchased, wanted, m, rule_set.exclude_purchased)
        history = (
            history_frame(ctx, one_user(steps, row)) if with_history and row is not None else pl.DataFrame()
        )
        out.append(Prepared(user, cands, source, history, ctx.now))
    return out, ctx.active.model.device.type, score_ms, catalog.n_items


def homepages_for(
    user_ids: list[str],
    rule_set: RuleSet | None = None,
    k: int = DEFAULT_K,
    m: int = DEFAULT_M,
    db_path=None,
    with_history: bool = False,
    ctx: ShopContext | None = None,
    scored: tuple[np.ndarray, float] | None = None,
) -> list[HomepageView]:
    """Batched: one forward pass for all users' scores, then the rules per user (the saved rule set when
    ``rule_set`` is None). ``ctx``: a snapshot built from other frames than the store's (a release);
    ``scored``: those scores when the caller has them (``prepare``)."""
    if not 1 <= k <= SLOT_MAX:
        raise InputError(f"a homepage has 1 to {SLOT_MAX} slots, not {k}")
    rule_set = rule_set if rule_set is not None else load_rule_set(db_path=db_path)
    prepared, device, score_ms, n_items = prepare(user_ids, rule_set, m, db_path, with_history, ctx, scored)
    views = []
    for p in prepared:
        ruled = rank_homepage(p.user, p.candidates, rule_set, k, p.now)
        views.append(
            HomepageView(
                user_id=p.user.user_id,
                user=p.user,
                ruled=ruled,
                model_only=model_only(p.user, p.candidates, k),
                metrics=list_metrics(ruled, p.candidates, rule_set, p.user, p.now),
                source=p.source,
                device=device,
                scored_items=n_items,
                score_ms=score_ms,
                pool=p.candidates,
                history=p.history,
            )
        )
    return views


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
