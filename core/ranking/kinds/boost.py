"""Boost: raise the relevance of some items by a factor (a sale, new arrivals)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.ranking.conditions import Condition
from core.ranking.kinds.base import Field, Kind, Stage, Widget, unknown_items
from core.ranking.reasons import Reason, ReasonCode


@dataclass(frozen=True)
class Params:
    condition: Condition
    factor: float  # × relevance, ≥ 1


class Code(ReasonCode):
    BOOSTED = ("boost.boosted", "boosted", "boosted ×{factor:g} by rule {rule}", "#DFF3E4")


def scale(state, rule, code: ReasonCode) -> None:
    """Multiply the relevance of the rule's items by its factor and note it on those that may be shown."""
    hit = state.match(rule.spec.condition)
    state.rel = np.where(hit, state.rel * rule.spec.factor, state.rel)
    reason = Reason(code, rule.rule_id, {"factor": rule.spec.factor})
    for i in np.flatnonzero(hit & state.ok):
        state.note(int(i), reason)


class Boost(Kind):
    name = "boost"
    title = "Boost items"
    summary = "Raise some items' relevance by a factor: they move up, the model still decides among them."
    stage = Stage.SCORES
    order = 1
    Params = Params
    Code = Code
    fields = (
        Field(
            "condition",
            "Items to boost",
            Widget.CONDITION,
            "items, categories, brands, sellers…",
            default=Condition(),
        ),
        Field(
            "factor", "Factor", Widget.NUMBER, "relevance × factor; 2 doubles it", "×", 1, 100, default=1.5
        ),
    )
    table = {"target": "condition", "value": "factor"}

    def refine(self, p: Params, where, known_items) -> list[str]:
        return unknown_items(where, p.condition, known_items)

    def apply(self, state, rules) -> None:
        for r in rules:
            scale(state, r, Code.BOOSTED)

    def sentence(self, p: Params) -> str:
        return f"boost {p.condition.describe()} ×{p.factor:g}"


KIND = Boost()
