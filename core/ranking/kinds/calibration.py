"""Calibration: the list's mix of top-level categories follows the shopper's history (Steck 2018)."""

from __future__ import annotations

from dataclasses import dataclass

from core.category_paths import mix_by_top_level
from core.ranking import rerank
from core.ranking.kinds.base import Field, Kind, Stage, Widget
from core.ranking.reasons import ReasonCode


@dataclass(frozen=True)
class Params:
    strength: float  # Steck's λ: 0 = relevance only, 1 = the category mix only


class Code(ReasonCode):
    SWAP = (
        "calibration.swap",
        "calibration swap",
        "swapped in to match your category mix (rule {rule})",
        "#DDEBFB",
    )


class Calibration(Kind):
    name = "calibration"
    title = "Calibrate to each shopper's categories"
    summary = "The homepage's mix of categories follows what the shopper browses and buys."
    stage = Stage.RERANK
    order = 2
    Params = Params
    Code = Code
    fields = (
        Field(
            "strength",
            "Strength λ",
            Widget.NUMBER,
            "0 = the model's order, 1 = the shopper's category mix only",
            "",
            0,
            1,
            default=0.3,
        ),
    )
    table = {"value": "strength"}

    def apply(self, state, rules) -> None:
        p = rules[-1].spec
        if not p.strength or not state.user.category_mix:
            return
        target = mix_by_top_level(state.user.category_mix)
        state.order = rerank.calibrate(
            state.order, state.rel, state.c.top_categories(), target, state.k, p.strength
        )
        state.swapped_in(Code.SWAP, rules[-1].rule_id)

    def sentence(self, p: Params) -> str:
        return f"match each shopper's category mix (strength {p.strength:g})"


KIND = Calibration()
