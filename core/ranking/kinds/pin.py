"""Pin: one item on one slot, whatever the model thinks. Applied last, so that it always holds."""

from __future__ import annotations

from dataclasses import dataclass

from core.ranking.kinds.base import Field, Kind, Needs, Stage, Widget, slot_field
from core.ranking.reasons import Reason, ReasonCode


@dataclass(frozen=True)
class Params:
    item_id: str
    slot: int  # 1-based


class Code(ReasonCode):
    PINNED = (
        "pin.pinned",
        "pinned",
        "pinned to slot {slot} by a merchandiser (rule {rule})",
        "#1F2430",
        True,
    )
    NOT_IN_CATALOG = (
        "pin.not_in_catalog",
        "pin not applied",
        "pin rule {rule}: item {item} is not in the catalog; the pin was not applied",
    )
    OUT_OF_STOCK = (
        "pin.out_of_stock",
        "pin not applied",
        "pin rule {rule}: item {item} is out of stock; the pin was not applied",
    )
    OVER_BLOCK = (
        "pin.over_block",
        "pin over block",
        "pin rule {rule} and a block rule both name item {item}; the pin wins",
    )
    SLOT_TAKEN = (
        "pin.slot_taken",
        "pin moved",
        "pin rule {rule}: slot {slot} is already pinned; placed at slot {next}",
    )
    BEYOND_LIST = (
        "pin.beyond_list",
        "pin not applied",
        "pin rule {rule}: slot {slot} is beyond this list of {k}; not applied",
    )


class Pin(Kind):
    name = "pin"
    title = "Pin an item to a slot"
    summary = "Always show one item on one slot (a launch, a partner's product)."
    stage = Stage.PINS
    Params = Params
    Code = Code
    fields = (
        Field("item_id", "Item", Widget.ITEM, "the item to show; search by title or id, or pick a promotion"),
        slot_field(help="1 is the first slot of the homepage"),
    )
    table = {"target": "item_id", "slot": "slot"}

    def refine(self, p: Params, where, known_items) -> list[str]:
        if known_items is not None and p.item_id is not None and p.item_id not in known_items:
            return [f"{where}: item {p.item_id!r} is not in the catalog"]
        return []

    def needs(self, rules, table, index, now) -> Needs:
        return Needs(items=[r.spec.item_id for r in rules])

    def apply(self, state, rules) -> None:
        index = {item: i for i, item in enumerate(state.c.item_ids)}
        for r in sorted(rules, key=lambda r: r.spec.slot):
            item, slot = r.spec.item_id, r.spec.slot
            i = index.get(item)
            if i is None or not state.stocked[i]:
                code = Code.NOT_IN_CATALOG if i is None else Code.OUT_OF_STOCK
                state.conflict(Reason(code, r.rule_id, {"item": item}))
                continue
            if state.blocked[i]:
                state.conflict(Reason(Code.OVER_BLOCK, r.rule_id, {"item": item}))
            while slot in state.pinned and slot <= state.k:
                state.conflict(Reason(Code.SLOT_TAKEN, r.rule_id, {"slot": slot, "next": slot + 1}))
                slot += 1
            if slot > state.k:
                state.conflict(Reason(Code.BEYOND_LIST, r.rule_id, {"slot": slot, "k": state.k}))
                continue
            state.pinned[slot] = i
            state.reasons[i] = [Reason(Code.PINNED, r.rule_id, {"slot": slot})]

    def sentence(self, p: Params) -> str:
        return f"pin item {p.item_id} to slot {p.slot}"


KIND = Pin()
