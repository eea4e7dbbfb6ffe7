"""Bury: lower the relevance of some items by a factor (cheap accessories, slow sellers)."""

from __future__ import annotations

from dataclasses import dataclass

from core.ranking.conditions import Condition
from core.ranking.kinds.base import Field, Kind, Stage, Widget, unknown_items
from core.ranking.kinds.boost import scale
from core.ranking.reasons import ReasonCode


@dataclass(frozen=True)
class Params:
    condition: Condition
    factor: float  # × relevance, in (0, 1]


class Code(ReasonCode):
    BURIED = ("bury.buried", "buried", "buried ×{factor:g} by rule {rule}", "#FDE2E1")


class Bury(Kind):
    name = "bury"
    title = "Bury items"
    summary = "Lower some items' relevance by a factor: they move down, without being blocked."
    stage = Stage.SCORES
    order = 2
    Params = Params
    Code = Code
    fields = (
        Field(
            "condition",
            "Items to bury",
            Widget.CONDITION,
            "items, categories, brands, sellers…",
            default=Condition(),
        ),
        Field(
            "factor",
            "Factor",
            Widget.NUMBER,
            "relevance × factor; 0.5 halves it",
            "×",
            0,
            1,
            lo_open=True,
            default=0.5,
        ),
    )
    table = {"target": "condition", "value": "factor"}

    def refine(self, p: Params, where, known_items) -> list[str]:
        return unknown_items(where, p.condition, known_items)

    def apply(self, state, rules) -> None:
        for r in rules:
            scale(state, r, Code.BURIED)

    def sentence(self, p: Params) -> str:
        return f"bury {p.condition.describe()} ×{p.factor:g}"


KIND = Bury()
