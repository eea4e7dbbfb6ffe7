"""Why is this item in this slot for this shopper? SHAP on the active model, plus what the rules did.

The glue between the homepage pipeline (which item, which slot, which reasons) and
``core.insight.explain`` (attributions of the model's score to past events and context).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from core import category_paths
from core.errors import InputError, NotFoundError
from core.insight.explain import (
    Explanation,
    explain_item,
    global_importance,
    part_lifts,
    waterfall_data,
)
from core.insight.explain_text import drivers, parts_sentence, rules_effect, slot_sentence
from core.ranking.homepage import HomepageView, homepage_for
from core.ranking.reasons import Reason
from core.ranking.rules import RuleSet
from core.ranking.shop import shop_context, user_steps
from models.base import EVENT_NAMES


@dataclass
class SlotExplanation:
    user_id: str
    slot: int
    item_id: str
    item_title: str
    explanation: Explanation
    waterfall: list[dict]  # label, value, cumulative — base value first, score last
    sentence: str
    rules_effect: str
    is_fallback: bool
    reasons: list[Reason]  # what the rules (or the model) did to the slot, as data: badges read the codes
    part_lifts: dict[str, float]  # a blend's parts: how far each lifted the item above an average item
    parts_sentence: str | None  # the same in words; None for a model of one part


def _ago(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(1, int(seconds // 60))} min ago"
    if seconds < 86_400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86_400)} days ago"


def _history_labels(ctx, steps, max_len: int) -> tuple[dict, dict, dict, list[str]]:
    """The waterfall's label per history position, each history item's title and category, and how long ago
    each event was: what the SHAP figures are worded with."""
    items, evs, ts = steps.items[0][-max_len:], steps.event_types[0][-max_len:], steps.ts[0][-max_len:]
    titles = ctx.attrs["title"].fill_null("")
    cats = ctx.attrs["category"].fill_null("")
    now = ctx.now.timestamp()
    offset = max_len - len(items)
    labels, item_titles, categories = {}, {}, {}
    for p, (i, e, t) in enumerate(zip(items, evs, ts)):
        title = titles[int(i) - 1] or ctx.active.catalog.vocab.decode([i])[0]
        labels[offset + p] = (
            f"{EVENT_NAMES.get(int(e), '?')}: {title} ({cats[int(i) - 1] or '?'}, {_ago(now - t)})"
        )
        item_titles[int(i)] = title
        categories[int(i)] = cats[int(i) - 1]
    return labels, item_titles, categories, [_ago(now - t) for t in ts]


def explain_slot(
    user_id: str,
    slot: int,
    rule_set: RuleSet | None = None,
    view: HomepageView | None = None,
    db_path=None,
    seed: int = 0,
) -> SlotExplanation:
    """SHAP for the item in ``slot`` (1-based) of this user's homepage under ``rule_set``."""
    ctx = shop_context(db_path)
    steps = user_steps(ctx, user_id)
    if not len(steps):
        if str(user_id) not in ctx.users:
            raise NotFoundError(f"no such shopper: '{user_id}' is not in the shop — check the id")
        raise NotFoundError(
            f"shopper {user_id} has no history: their homepage is the segment fallback, there is nothing to explain"
        )
    if ctx.active.is_fallback:
        raise NotFoundError("no model is trained yet: the popularity baseline has nothing to attribute")
    view = view or homepage_for(user_id, rule_set, db_path=db_path)
    slots = {s.slot: s for s in view.ruled.slots}
    if slot not in slots:
        raise InputError(
            f"slot {slot} is not on this homepage", fix=f"pick a slot between 1 and {len(slots)}"
        )
    chosen = slots[slot]
    model, catalog = ctx.active.model, ctx.active.catalog
    max_len = model.max_len
    history = steps.histories([0], max_len=max_len)
    item_index = catalog.vocab.index[chosen.item_id]
    exp = explain_item(model, history, item_index, seed=seed)

    labels, item_titles, categories, event_ago = _history_labels(ctx, steps, max_len)
    item_title = ctx.attrs["title"].fill_null("")[item_index - 1] or chosen.item_id
    lifts = part_lifts(model, history, item_index)
    return SlotExplanation(
        user_id=str(user_id),
        slot=slot,
        item_id=chosen.item_id,
        item_title=item_title,
        explanation=exp,
        waterfall=waterfall_data(exp, labels),
        sentence=slot_sentence(chosen.reasons, chosen.slot, drivers(exp, item_titles, event_ago, categories)),
        rules_effect=rules_effect(chosen.reasons, chosen.model_rank, chosen.slot),
        is_fallback=ctx.active.is_fallback,
        reasons=chosen.reasons,
        part_lifts=lifts,
        parts_sentence=parts_sentence(lifts),
    )


def global_drivers(target: str, n_users: int = 100, seed: int = 0, db_path=None) -> dict[str, pl.DataFrame]:
    """Across a sample of shoppers: which categories and event types drive recommending ``target``
    (an item id, or a category path prefix)."""
    from core.ranking.impact import sample_users

    ctx = shop_context(db_path)
    catalog, model = ctx.active.catalog, ctx.active.model
    cats = np.array([""] + ctx.attrs["category"].fill_null("").to_list(), dtype=object)
    if target in catalog.vocab.index:
        targets = np.array([catalog.vocab.index[target]])
    else:
        targets = np.flatnonzero(category_paths.under_any(cats, target.rstrip(".")))
        if not len(targets):
            raise InputError(f"'{target}' is neither an item id nor a category path in the catalog")
    users = sample_users(n_users, seed, db_path)
    # the snapshot's steps: the same histories the homepages are built from, no second read of the store
    history = ctx.steps.histories([ctx.by_user[u] for u in users if u in ctx.by_user], max_len=model.max_len)
    tops = category_paths.top_levels(cats)
    return global_importance(model, history, targets, tops, n_users=n_users, seed=seed)
