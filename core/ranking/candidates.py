"""A shopper's candidates: the model's top-M by score, plus the items the shopper's rules need whatever the
model thinks (a pin's item; the best few of a reserve's or a fairness rule's group; the best few of every
category for a calibration). Pure: a snapshot and one score vector in, ``Candidates`` out."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import numpy as np

from core.ranking.limits import SLOT_MAX
from core.ranking.pipeline import plan
from core.ranking.rules import Rule
from core.ranking.shop import ShopContext
from core.ranking.state import Candidates

POOL_MIN = 200  # a pool's best items kept among the candidates: max(M, POOL_MIN)
GROUP_BEST = SLOT_MAX  # each group's best items kept among the candidates: enough to fill any homepage


class Needed(NamedTuple):
    """Dense ids the rules need among the candidates (``needed_items``)."""

    always: np.ndarray  # whatever their state: a pin's item
    pool: np.ndarray  # the best max(M, POOL_MIN) of them by score
    groups: list[np.ndarray]  # each group's in-stock items: the best GROUP_BEST of each by score


def needed_items(ctx: ShopContext, rules: list[Rule], now: datetime) -> Needed:
    """What the rules need among the candidates, each kind saying what its rules need."""
    index = ctx.active.catalog.vocab.index
    always: list[int] = []
    pool = None  # (N,) bool over the catalog table
    groups: list[np.ndarray] = []
    for kind, rs in plan(rules):
        needs = kind.needs(rs, ctx.table, index, now)
        if needs is None:
            continue
        always += [i for i in (index.get(str(item)) for item in needs.items) if i]
        if needs.pool is not None:
            pool = needs.pool.copy() if pool is None else pool | needs.pool
        if needs.groups is not None:
            groups += [rows + 1 for rows in needs.groups]
    pools = np.flatnonzero(pool) + 1 if pool is not None else np.zeros(0, dtype=np.int64)
    return Needed(np.unique(np.array(always, dtype=np.int64)), pools.astype(np.int64), groups)


def top_m(
    ctx: ShopContext, scores: np.ndarray, purchased: np.ndarray, m: int, exclude_purchased: bool
) -> np.ndarray:
    """Dense ids of the best ``m`` of ``scores`` (N+1,) that may be shown (in stock, and not bought with
    ``exclude_purchased``), best first; fewer when fewer may be shown. ``core.ranking.population`` makes the
    same selection for a whole score matrix at once: change both together."""
    masked = scores.copy()
    masked[~ctx.in_stock] = -np.inf
    if exclude_purchased and len(purchased):
        masked[purchased] = -np.inf
    masked[0] = -np.inf
    m = min(m, int(np.isfinite(masked).sum()))
    top = np.argpartition(-masked, m - 1)[:m] if m > 0 else np.zeros(0, dtype=np.int64)
    return top[np.argsort(-masked[top], kind="stable")]


def with_needed(ctx: ShopContext, scores: np.ndarray, top: np.ndarray, needed: Needed, m: int) -> Candidates:
    """The top-M, then the needed items: a pool's best by score (bounded, so one broad rule cannot flood
    the candidates), each group's best, and the always-needed ones whatever their state (the pipeline
    reports a pinned item that is out of stock or blocked)."""
    ranks = np.zeros(len(scores), dtype=np.int64)
    ranks[top] = np.arange(1, len(top) + 1)
    always, pools, groups = needed
    pool = pools[(ranks[pools] == 0) & ctx.in_stock[pools]] if len(pools) else pools
    pool = pool[np.argsort(-scores[pool], kind="stable")][: max(m, POOL_MIN)]
    taken = ranks > 0
    taken[pool] = True
    best = _best_of_each(scores, groups, taken)
    taken[best] = True
    pinned = always[~taken[always]] if len(always) else always
    chosen = np.concatenate([top, pool, best, pinned]).astype(np.int64)
    return Candidates(
        ctx.active.catalog.vocab.decode(chosen),
        scores[chosen].astype(np.float64),
        ranks[chosen],
        None,  # gathered when a rule or the preview reads them
        table=ctx.table,
        rows=chosen - 1,
        vectors=ctx.embeddings[1:],
    )


def _best_of_each(scores: np.ndarray, groups: list[np.ndarray], taken: np.ndarray) -> np.ndarray:
    """The best ``GROUP_BEST`` of each group by score that are not ``taken`` yet, best first."""
    if not groups:  # most rule sets ask for none: no work on every homepage
        return np.zeros(0, dtype=np.int64)
    best = [
        g if len(g) <= GROUP_BEST else g[np.argpartition(-scores[g], GROUP_BEST - 1)[:GROUP_BEST]]
        for g in groups
    ]
    out = np.unique(np.concatenate(best))  # two kinds' groups may share items
    out = out[~taken[out]]
    return out[np.argsort(-scores[out], kind="stable")]


def build_candidates(
    ctx: ShopContext,
    scores: np.ndarray,
    purchased: np.ndarray,
    needed: Needed,
    m: int,
    exclude_purchased: bool,
) -> Candidates:
    """One shopper's candidates from their scores (N+1,): ``top_m``, then ``with_needed``."""
    top = top_m(ctx, scores, purchased, m, exclude_purchased)
    return with_needed(ctx, scores, top, needed, len(top))
