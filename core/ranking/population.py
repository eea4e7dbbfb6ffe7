"""Homepages for a whole population at once (the bias audit): the same lists as ``homepages_for``, slot for
slot, without what only the preview shows (slots' reasons, list metrics, history, candidates' attributes).

Per chunk of users: one forward pass gives the (B, N+1) score matrix, and every user's top-M is taken from
it in one numpy selection (the one ``candidates.top_m`` makes per user, so ties fall the same way). The
model-only list is then each row's first k of its top-M; only the ruled list runs per user, through the
pipeline's stages (``pipeline.homepage_items``). A shopper with fewer than M items they may be shown gets
the per-user selection (``candidates.top_m``); a shopper without history (the segment fallback) gets
``homepages_for`` itself.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.errors import InputError
from core.ranking.candidates import top_m, with_needed
from core.ranking.homepage import PURCHASE, homepages_for, model_scores, needed_for, user_context
from core.ranking.limits import DEFAULT_K, DEFAULT_M, SLOT_MAX
from core.ranking.pipeline import homepage_items, model_only
from core.ranking.rules import RuleSet
from core.ranking.shop import ShopContext, shop_context

SCHEMA = {"user_id": pl.Utf8, "slot": pl.Int64, "item_id": pl.Utf8}


def _purchases(ctx: ShopContext, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(batch row, dense id) of every purchase in the users' steps."""
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    items = [ctx.steps.items[r] for r in rows]
    bought = np.concatenate([ctx.steps.event_types[r] for r in rows]) == PURCHASE
    batch_row = np.repeat(np.arange(len(rows)), [len(i) for i in items])
    return batch_row[bought], np.concatenate(items)[bought].astype(np.int64)


def top_m_batch(
    ctx: ShopContext, scores: np.ndarray, rows: list[int], m: int, exclude_purchased: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``candidates.top_m`` for every row of ``scores`` (B, N+1) at once: (B, m) dense ids, best first, and
    (B,) bool, whether the row has m items that may be shown (a row without them must be ranked alone)."""
    if m >= scores.shape[1]:  # more than the catalog: every row is short
        return np.zeros((len(scores), 0), dtype=np.int64), np.zeros(len(scores), dtype=bool)
    # the negated masked scores in one pass: the very values top_m partitions (-masked), so ties fall alike
    neg = np.where(ctx.in_stock, -scores, np.inf)
    if exclude_purchased:
        neg[_purchases(ctx, rows)] = np.inf
    neg[:, 0] = np.inf
    full = np.isfinite(neg).sum(axis=1) >= m
    top = np.argpartition(neg, m - 1, axis=1)[:, :m]  # (B, m), unordered
    order = np.argsort(np.take_along_axis(neg, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), full


def _frame(user_ids: list[str], lists: list[list[str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": np.repeat(np.array(user_ids, dtype=object), [len(x) for x in lists]).tolist(),
            "slot": np.concatenate([np.arange(1, len(x) + 1) for x in lists]) if lists else [],
            "item_id": [item for x in lists for item in x],
        },
        schema=SCHEMA,
    )


def _batch_lists(
    ctx: ShopContext, user_ids: list[str], rows: list[int], rule_set: RuleSet, k: int, m: int
) -> tuple[list[list[str]], list[list[str]]]:
    """(model-only lists, ruled lists) of users with history, ``rows`` their rows in ``ctx.steps``."""
    scores, _ = model_scores(ctx, rows)  # (B, N+1)
    top, full = top_m_batch(ctx, scores, rows, m, rule_set.exclude_purchased)
    # model_only skips bought items whatever the rule set says; the top-M already did when it excludes them,
    # and the items added for rules rank below it
    first_k = rule_set.exclude_purchased and m >= k
    vocab, needed = ctx.active.catalog.vocab, {}
    model_ids = vocab.decode(top[:, :k].ravel()) if first_k and full.any() else []
    model, ruled = [], []
    for n, (user_id, row) in enumerate(zip(user_ids, rows)):
        user, purchased = user_context(ctx, user_id, row)
        # a row with fewer than M items it may show: the per-user selection, whose ties fall as it always did
        user_top = top[n] if full[n] else top_m(ctx, scores[n], purchased, m, rule_set.exclude_purchased)
        cands = with_needed(ctx, scores[n], user_top, needed_for(ctx, rule_set, user, needed), len(user_top))
        if not first_k:
            model.append(model_only(user, cands, k).item_ids)
        else:
            model.append(model_ids[n * k : (n + 1) * k] if full[n] else vocab.decode(user_top[:k]))
        ruled.append(homepage_items(user, cands, rule_set, k, ctx.now))
    return model, ruled


def population_homepages(
    user_ids: list[str],
    rule_set: RuleSet,
    k: int = DEFAULT_K,
    m: int = DEFAULT_M,
    db_path=None,
    ctx: ShopContext | None = None,
) -> dict[str, pl.DataFrame]:
    """The homepages of ``user_ids`` as two frames of (user_id, slot, item_id): "model_only" (the model
    alone, ``HomepageView.model_only``) and "ruled" (under ``rule_set``, ``HomepageView.ruled``); users in
    the order given. Call it with chunks of a few thousand users: the score matrix is (B, N+1)."""
    if not 1 <= k <= SLOT_MAX:
        raise InputError(f"a homepage has 1 to {SLOT_MAX} slots, not {k}")
    ctx = ctx or shop_context(db_path)
    user_ids = [str(u) for u in user_ids]
    done = [u for u in user_ids if u in ctx.by_user]
    model, ruled = _batch_lists(ctx, done, [ctx.by_user[u] for u in done], rule_set, k, m)
    rest = [u for u in user_ids if u not in ctx.by_user]  # the segment fallback: one by one
    for view in homepages_for(rest, rule_set, k=k, m=m, ctx=ctx) if rest else []:
        done.append(view.user_id)
        model.append(view.model_only.item_ids)
        ruled.append(view.ruled.item_ids)
    position = {u: n for n, u in enumerate(user_ids)}
    order = sorted(range(len(done)), key=lambda n: position[done[n]])
    users = [done[n] for n in order]
    return {
        "model_only": _frame(users, [model[n] for n in order]),
        "ruled": _frame(users, [ruled[n] for n in order]),
    }
