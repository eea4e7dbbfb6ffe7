"""Explanations for people: one plain sentence, what the rules did, rows for a waterfall chart.

SHAP explains the model's score; ``rules_effect`` says separately what the merchandising rules did to the
model's rank, because no attribution of the score can show a pin or a boost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from core.category_paths import leaf
from core.insight.attribution import Explanation, FeatureAttribution
from core.ranking.reasons import Model, Reason
from models.base import EVENT_NAMES
from models.blend import part_kind, part_seed

# verb templates per event type: {x} is the thing (a title, or "3 phone cases")
_VERBS = {
    "view": "viewed {x}",
    "click": "clicked {x}",
    "add_to_cart": "added {x} to your cart",
    "remove_from_cart": "removed {x} from your cart",
    "purchase": "bought {x}",
    "review": "reviewed {x}",
}


def event_phrase(event_type: int | None, thing: str) -> str:
    """'added Bluetooth headphones to your cart' for (add_to_cart, 'Bluetooth headphones')."""
    name = EVENT_NAMES.get(int(event_type or 0), "")
    return _VERBS.get(name, "interacted with {x}").format(x=thing)


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _category_of(categories, item: int) -> str | None:
    if categories is None:
        return None
    try:
        c = categories.get(item) if isinstance(categories, Mapping) else categories[item]
    except (IndexError, KeyError, TypeError):
        return None
    if c is None or (isinstance(c, float) and np.isnan(c)):
        return None
    c = str(c).strip()
    return c or None


def _plural(category: str, n: int) -> str:
    name = leaf(category).replace("_", " ").strip() or category
    return f"{n} {name}" if name.lower().endswith("s") else f"{n} items in {name}"


def _ago_lookup(explanation: Explanation, event_ago: Sequence[str] | None) -> dict[int, str]:
    """position -> 'n days ago'; ``event_ago`` has one entry per history position, or one per real event."""
    if not event_ago:
        return {}
    events = [f for f in explanation.features if f.kind == "event"]
    if len(event_ago) == len(events):
        return {f.position: event_ago[k] for k, f in enumerate(events) if event_ago[k]}
    real = [f for f in events if f.item_index]
    if len(event_ago) == len(real):
        return {f.position: event_ago[k] for k, f in enumerate(real) if event_ago[k]}
    return {}


Groups = dict[tuple, list[FeatureAttribution]]
NOTHING = "Recommended mainly because it scores well for shoppers in general; nothing in your recent history raised it."


def _groups(explanation: Explanation, categories) -> Groups:
    """The players that raised the score: same-category events of one kind together, context alone."""
    groups: Groups = {}
    for f in explanation.players():
        if f.value <= 0:
            continue
        if f.kind == "context":
            groups[("context", f.name)] = [f]
            continue
        cat = _category_of(categories, f.item_index)
        key = (
            ("event", f.event_type, cat)
            if cat
            else ("event", f.event_type, f"item {f.item_index}", f.position)
        )
        groups.setdefault(key, []).append(f)
    return groups


def _strongest(groups: Groups, max_phrases: int, coverage: float) -> list[tuple[tuple, list]]:
    """The groups worth a phrase: the strongest first, until they cover ``coverage`` of the total or the next
    is under a tenth of the first."""
    ranked = sorted(groups.items(), key=lambda kv: -sum(f.value for f in kv[1]))
    total = sum(sum(f.value for f in fs) for _, fs in ranked)
    chosen, acc, top = [], 0.0, sum(f.value for f in ranked[0][1])
    for key, fs in ranked[:max_phrases]:
        v = sum(f.value for f in fs)
        if chosen and (acc >= coverage * total or v < 0.1 * top):
            break
        chosen.append((key, fs))
        acc += v
    return chosen


def _event_phrase(key: tuple, fs: list[FeatureAttribution], titles: Mapping, ago: dict[int, str]) -> str:
    if len(fs) == 1:
        f = fs[0]
        phrase = event_phrase(f.event_type, titles.get(f.item_index) or f"item {f.item_index}")
        return f"{phrase} {ago[f.position]}" if ago.get(f.position) else phrase
    if len({f.item_index for f in fs}) == 1:  # the same item several times
        title = titles.get(fs[0].item_index) or f"item {fs[0].item_index}"
        return event_phrase(fs[0].event_type, title) + f" {len(fs)} times"
    return event_phrase(fs[0].event_type, _plural(key[2], len(fs)))


def drivers(
    explanation: Explanation,
    item_titles: Mapping[int, str] | None = None,
    event_ago: Sequence[str] | None = None,
    categories: Mapping[int, str] | Sequence[str] | np.ndarray | None = None,
    *,
    max_phrases: int = 3,
    coverage: float = 0.75,
) -> str | None:
    """What raised the model's score, as the end of a sentence ('you viewed 3 phone cases, and because of the
    time since last visit'); None when nothing in the history raised it."""
    groups = _groups(explanation, categories)
    if not groups:
        return None
    titles, ago = item_titles or {}, _ago_lookup(explanation, event_ago)
    events, context = [], []
    for key, fs in _strongest(groups, max_phrases, coverage):
        if key[0] == "context":
            context.append(f"the {fs[0].name}" if fs[0].name.startswith("time") else fs[0].name)
        else:
            events.append(_event_phrase(key, fs, titles, ago))
    if not events:
        return "of " + _join(context)
    return "you " + _join(events) + (", and because of " + _join(context) if context else "")


def sentence(
    explanation: Explanation,
    item_titles: Mapping[int, str] | None = None,
    event_ago: Sequence[str] | None = None,
    categories: Mapping[int, str] | Sequence[str] | np.ndarray | None = None,
    *,
    max_phrases: int = 3,
    coverage: float = 0.75,
) -> str:
    """One plain-language sentence: the past events that pushed the score up most, same-category events of
    one kind grouped ('viewed 3 phone cases'), single events with their title and when.

    ``item_titles``: item index -> title; ``event_ago``: 'n days ago' per history position or per real event;
    ``categories``: item index -> category path (a mapping, or an array indexed by item)."""
    why = drivers(explanation, item_titles, event_ago, categories, max_phrases=max_phrases, coverage=coverage)
    return NOTHING if why is None else "Recommended mainly because " + why


def slot_sentence(reasons: Sequence[Reason], slot: int, why: str | None) -> str:
    """The sentence for a homepage slot: the model's reasons (``why``, from ``drivers``) — unless a rule, not
    the model, chose the slot's item (a pin): then that first, and the model's reasons as what they are."""
    placed = next((r for r in reasons if r.code.places), None)
    if placed is None:
        return NOTHING if why is None else "Recommended mainly because " + why
    lead = f"Shown in slot {slot} because it was {placed.text()}, not because of the model"
    if why is None:
        return lead + "; nothing in your recent history raised the model's own score for it."
    return lead + ". The model's own score for it rose mainly because " + why + "."


# ---------------------------------------------------------------- the rules


def _said(model_rank: int | None) -> str:
    return (
        f"The model ranked it #{model_rank}"
        if model_rank
        else "The model did not rank it among its candidates"
    )


def rules_effect(slot_reasons: Sequence[Reason] | None, model_rank: int | None, final_slot: int) -> str:
    """What the merchandising rules did to the model's ranking of this slot's item, in one line
    ('The model ranked it #5; the rules moved it up to slot 3: boosted ×1.5 by rule sale'). Ranks and slots
    are 1-based; each reason's words come from its code."""
    reasons = [r for r in (slot_reasons or []) if r.code is not Model.RANKED]
    rank = int(model_rank) if model_rank is not None and int(model_rank) > 0 else None
    said = _said(rank)
    placed = next((r for r in reasons if r.code.places), None)
    if placed is not None:
        return f"{said}; {placed.text()}."
    phrases = [r.text() for r in reasons]
    if rank == final_slot and not phrases:
        return f"{said} and the rules left it there (slot {final_slot})."
    if not phrases:
        if rank is None:
            return f"{said}; the rules placed it in slot {final_slot}."
        return f"{said}; it is in slot {final_slot} because the rules moved other items (pins, blocks, caps) around it."
    if rank is None:
        return f"{said}; the rules placed it in slot {final_slot}: " + _join(phrases) + "."
    direction = "up " if final_slot < rank else "down " if final_slot > rank else ""
    moved = (
        f"moved it {direction}to slot {final_slot}" if rank != final_slot else f"kept it in slot {final_slot}"
    )
    return f"{said}; the rules {moved}: " + _join(phrases) + "."


# ---------------------------------------------------------------- the chart


def waterfall_data(
    explanation: Explanation,
    labels: Mapping[int | str, str] | None = None,
    max_features: int = 15,
) -> list[dict]:
    """Rows for a plotly waterfall, in drawing order: the base value, the features by |attribution|
    (the rest summed into one 'n other features' row), then the score. Each row: label, value, cumulative
    (the running total after the row; the last row's cumulative is the score).

    ``labels``: history position (events) or feature name (context) -> label; default the feature's name."""
    labels = labels or {}
    rows = [
        {
            "label": "base value (empty history)",
            "value": explanation.base_value,
            "cumulative": explanation.base_value,
        }
    ]
    fs = sorted(explanation.players(), key=lambda f: -abs(f.value))
    shown, rest = fs[:max_features], fs[max_features:]
    if len(rest) == 1:
        shown, rest = fs, []
    acc, seen = explanation.base_value, {}
    for f in shown:
        acc += f.value
        key = f.position if f.kind == "event" else f.name
        rows.append(
            {"label": labels.get(key) or labels.get(f.name) or f.name, "value": f.value, "cumulative": acc}
        )
        seen[rows[-1]["label"]] = seen.get(rows[-1]["label"], 0) + 1
        if seen[rows[-1]["label"]] > 1:  # a chart axis merges equal labels: keep every bar apart
            rows[-1]["label"] += f" ({seen[rows[-1]['label']]})"
    if rest:
        v = sum(f.value for f in rest)
        acc += v
        rows.append({"label": f"{len(rest)} other features", "value": v, "cumulative": acc})
    rows.append({"label": "model score", "value": explanation.score, "cumulative": explanation.score})
    return rows


# what a merchandiser calls each part of a blend (models.blend's part names)
PART_NAMES = {
    "transformer": "the transformer",
    "lstm": "the LSTM",
    "itemknn": "item-kNN (items viewed or bought together)",
    "ease": "EASE (items the same shoppers chose)",
    "mostpop": "popularity",
}


def _part_name(part: str) -> str:
    """'the transformer' for "transformer", 'the transformer (seed 2)' for its second seed "transformer-2"."""
    words = PART_NAMES.get(part_kind(part), part)
    return words if part_seed(part) == 1 else f"{words} (seed {part_seed(part)})"


def parts_sentence(lifts: Mapping[str, float]) -> str | None:
    """'Of the lift that puts this item above an average item, the transformer 61%, item-kNN 34% and
    popularity 5%.' for a blend's ``part_lifts`` (a part that lowered it is named apart, with its lift in
    log-probability); None for a model of one part (nothing to split)."""
    if len(lifts) < 2:
        return None
    up = {p: v for p, v in sorted(lifts.items(), key=lambda kv: -kv[1]) if v > 0}
    down = [f"{_part_name(p)} held it back ({v:+.2f})" for p, v in lifts.items() if v <= 0]
    if not up:
        return "No part of the blend put this item above an average item" + (
            f"; {_join(down)}." if down else "."
        )
    total = sum(up.values())
    gave = _join([f"{_part_name(p)} {v / total:.0%}" for p, v in up.items()])
    return f"Of the lift that puts this item above an average item, {gave}" + (
        f"; {_join(down)}." if down else "."
    )
