"""Block: items that may not be shown (a recall, a brand dispute). Every surface applies it."""

from __future__ import annotations

from dataclasses import dataclass

from core.ranking.conditions import Condition
from core.ranking.kinds.base import Field, Kind, Stage, Widget, unknown_items
from core.ranking.reasons import ReasonCode


@dataclass(frozen=True)
class Params:
    condition: Condition


class Code(ReasonCode):
    BLOCKED = ("block.blocked", "blocked", "not shown: blocked by rule {rule}", "#FDE2E1")


class Block(Kind):
    name = "block"
    title = "Block items"
    summary = "Never show these items, on the homepage, in search or in similar items."
    stage = Stage.EXCLUSIONS
    Params = Params
    Code = Code
    fields = (
        Field(
            "condition",
            "Items to block",
            Widget.CONDITION,
            "items, categories, brands, sellers…",
            default=Condition(),
        ),
    )
    table = {"target": "condition"}

    def refine(self, p: Params, where, known_items) -> list[str]:
        if p.condition is not None and p.condition.empty:
            return [f"{where}: blocks every item — give an item id or a condition"]
        return unknown_items(where, p.condition, known_items)

    def apply(self, state, rules) -> None:
        for r in rules:
            state.blocked |= state.match(r.spec.condition)

    def sentence(self, p: Params) -> str:
        return f"never show {p.condition.describe()}"


KIND = Block()
