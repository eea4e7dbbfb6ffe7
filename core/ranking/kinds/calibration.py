"""Calibration: the list's mix of top-level categories follows the shopper's history (Steck 2018)."""

from __future__ import annotations

from dataclasses import dataclass

from core.category_paths import mix_by_top_level
from core.ranking import rerank
from core.ranking.kinds.base import Field, Kind, Needs, Stage, Widget
from core.ranking.reasons import ReasonCode


@dataclass(frozen=True)
class Params:
    strength: float  # Steck's λ: 0 = relevance only, 1 = the category mix only
    pool: str = "best"  # "best": the best 4k candidates; "mix": also the best k of each category of the mix
    # "calibrated": every prefix of the top k follows the mix (Steck's greedy order); "ranked": the same items
    # in the order the ranking gave them. A rule saved before this field keeps the greedy order it was shown.
    order: str = "calibrated"


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
        Field(
            "pool",
            "Choose from",
            Widget.CHOICE,
            "best: the model's best 4k items · mix: also the best k of every category the shopper "
            "browses, so a category the model ranks low still gets its share",
            options=("best", "mix"),
            default="best",
        ),
        Field(
            "order",
            "Order",
            Widget.CHOICE,
            "calibrated: every top slot follows the mix, in the calibration's own order · ranked: the same "
            "items in the ranking's order, so the shopper's likeliest items stay first",
            options=("calibrated", "ranked"),
            default="calibrated",
        ),
    )
    table = {"value": "strength"}

    def needs(self, rules, table, index, now) -> Needs | None:
        """Pool "mix" picks from every category of the shopper's mix, so the candidates hold the best few
        of every top-level category, however low the model ranks it."""
        if any(r.spec.pool == "mix" for r in rules):
            return Needs(items=[], groups=table.in_stock_by_top_category())
        return None

    def apply(self, state, rules) -> None:
        p = rules[-1].spec
        if not p.strength or not state.user.category_mix:
            return
        target = mix_by_top_level(state.user.category_mix)
        state.order = rerank.calibrate(
            state.order,
            state.rel,
            state.c.top_categories(),
            target,
            state.k,
            p.strength,
            every_category=p.pool == "mix",
            keep_order=p.order == "ranked",
        )
        state.swapped_in(Code.SWAP, rules[-1].rule_id)

    def sentence(self, p: Params) -> str:
        every = ", choosing from every category of the mix" if p.pool == "mix" else ""
        ranked = ", the likeliest first" if p.order == "ranked" else ""
        return f"match each shopper's category mix (strength {p.strength:g}{every}{ranked})"


KIND = Calibration()
