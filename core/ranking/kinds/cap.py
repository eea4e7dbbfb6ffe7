"""Cap: at most ``max`` items per brand, category, seller or seller tier on the homepage."""

from __future__ import annotations

from dataclasses import dataclass

from core.ranking import rerank
from core.ranking.kinds.base import Field, Kind, Stage, Widget, slot_field
from core.ranking.reasons import Reason, ReasonCode

ATTRIBUTES = ("category", "brand", "seller_id", "seller_tier")


@dataclass(frozen=True)
class Params:
    attribute: str  # one of ATTRIBUTES
    max: int  # items per value of the attribute


class Code(ReasonCode):
    BROKEN_BY_PINS = (
        "cap.broken_by_pins",
        "cap broken",
        "cap {attribute} ≤ {max} is broken by pinned items ({values}); the pins win",
    )


def _caps(rules, c) -> dict[str, tuple[int, str]]:
    """attribute -> (max, rule id): the last rule per attribute wins; attributes the catalog lacks drop out."""
    caps = {r.spec.attribute: (r.spec.max, r.rule_id) for r in rules}
    return {a: v for a, v in caps.items() if c.has(a)}


class Cap(Kind):
    name = "cap"
    title = "Cap items per brand, category or seller"
    summary = "At most so many items of one brand (category, seller, seller tier) on the homepage."
    stage = Stage.RERANK
    order = 3
    Params = Params
    Code = Code
    fields = (
        Field("attribute", "Per", Widget.CHOICE, "what is counted", options=ATTRIBUTES),
        slot_field("max", "At most", "items of one value on the homepage"),
    )
    table = {"target": "attribute", "value": "max"}

    def apply(self, state, rules) -> None:
        caps = _caps(rules, state.c)
        values = {a: state.c.column(a, "") for a in caps}
        state.order = rerank.apply_caps(state.order, values, {a: m for a, (m, _) in caps.items()}, state.k)

    def check(self, state, rules) -> None:
        for attr, (cap, rule_id) in _caps(rules, state.c).items():
            vals = state.c.column(attr, "")
            counts: dict = {}
            for i in state.final:
                counts[vals[i]] = counts.get(vals[i], 0) + 1
            over = [v for v, m in counts.items() if m > cap]
            if over:
                params = {"attribute": attr, "max": cap, "values": ", ".join(map(str, over))}
                state.conflict(Reason(Code.BROKEN_BY_PINS, rule_id, params))

    def sentence(self, p: Params) -> str:
        return f"at most {p.max} items per {p.attribute.replace('_', ' ')} on the homepage"


KIND = Cap()
