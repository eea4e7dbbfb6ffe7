"""Reserve: at least ``slots`` of the first ``within`` slots go to items of a group (promotions, a campaign)."""

from __future__ import annotations

from dataclasses import dataclass

from core.ranking.conditions import Condition
from core.ranking.kinds.base import Field, Kind, Needs, Stage, Widget, slot_field, unknown_items
from core.ranking.reasons import Reason, ReasonCode


@dataclass(frozen=True)
class Params:
    condition: Condition
    slots: int  # how many slots the group gets, at least
    within: int | None  # among the first ``within`` slots; None = the whole homepage


class Code(ReasonCode):
    RESERVED = (
        "reserve.reserved",
        "reserved",
        "placed in a slot reserved for its group (rule {rule})",
        "#FFF2CC",
    )
    SHORT = (
        "reserve.short",
        "reserve short",
        "reserve rule {rule}: {want} slots reserved but only {available} matching items are available; "
        "the rest keep their model order",
    )


class Reserve(Kind):
    name = "reserve"
    title = "Reserve slots for a group"
    summary = "Give a group of items (say, promotions) at least some of the first slots."
    stage = Stage.SLOT_SHARES
    order = 2
    Params = Params
    Code = Code
    fields = (
        Field(
            "condition",
            "Items the slots are for",
            Widget.CONDITION,
            "items, categories, promoted…",
            default=Condition(),
        ),
        slot_field("slots", "Slots", "how many slots the group gets at least"),
        slot_field("within", "Within the first", "blank: anywhere on the homepage", default=None),
    )
    table = {"target": "condition", "value": "slots"}

    def refine(self, p: Params, where, known_items) -> list[str]:
        problems = unknown_items(where, p.condition, known_items)
        if p.within is not None and p.slots is not None and p.slots > p.within:
            problems.append(f"{where}: {p.slots} slots cannot fit within the first {p.within}")
        return problems

    def needs(self, rules, table, index, now) -> Needs:
        pool = None
        for r in rules:
            mask = table.mask(r.spec.condition, now)  # (N,) bool, cached per snapshot
            pool = mask.copy() if pool is None else pool | mask
        return Needs(items=[], pool=pool)

    def apply(self, state, rules) -> None:
        for r in rules:
            self._reserve(state, r)

    def _reserve(self, state, r) -> None:
        want, window = r.spec.slots, min(r.spec.within or state.k, state.k)
        hit = state.match(r.spec.condition) & state.ok
        top = state.order[:window]
        have = sum(bool(hit[i]) for i in top)
        extra = [i for i in state.order[window:] if hit[i]][: max(0, want - have)]
        if have + len(extra) < want:
            state.conflict(Reason(Code.SHORT, r.rule_id, {"want": want, "available": have + len(extra)}))
        replaceable = [j for j in range(len(top) - 1, -1, -1) if not hit[top[j]]]
        reason = Reason(Code.RESERVED, r.rule_id)
        for i, j in zip(extra, replaceable):
            top[j] = i
            state.note(i, reason)
        for i in top:
            if hit[i]:
                state.note(i, reason)
        state.put_first(top)

    def sentence(self, p: Params) -> str:
        where = f"the first {p.within} slots" if p.within else "the homepage"
        return f"reserve {p.slots} of {where} for {p.condition.describe()}"


KIND = Reserve()
