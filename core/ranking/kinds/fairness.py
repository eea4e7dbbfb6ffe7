"""Fairness: FA*IR (Zehlike et al. 2017) — every prefix of the list holds at least the minimum number of
protected items (say, from small sellers) that a fair ranking with share ``p`` would, at significance α."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InputError
from core.ranking import rerank
from core.ranking.conditions import Condition
from core.ranking.kinds.base import Field, Kind, Needs, Stage, Widget, unknown_items
from core.ranking.reasons import Reason, ReasonCode

DEFAULT_GROUP = Condition(seller_tier=("small",))  # what 'protected' means when no fairness rule is in force


@dataclass(frozen=True)
class Params:
    condition: Condition  # the protected group
    p: float  # the share of protected items a fair list holds, (0, 1)
    alpha: float  # significance of the test per prefix, (0, 0.5]


class Code(ReasonCode):
    SWAP = (
        "fairness.swap",
        "fairness swap",
        "swapped in to meet the fairness rule's minimum share (rule {rule})",
        "#E6E0FA",
    )
    SHORT = (
        "fairness.short",
        "fairness short",
        "fairness rule {rule}: only {placed} protected item(s) could be placed in the first {prefix} slots, "
        "FA*IR asks for {need}: the candidate pool has too few",
    )


class Fairness(Kind):
    name = "fairness"
    title = "A fair share for a group"
    summary = "Every stretch of the list from the top holds a minimum share of a protected group (FA*IR)."
    stage = Stage.SLOT_SHARES
    order = 1
    Params = Params
    Code = Code
    fields = (
        Field(
            "condition", "Protected group", Widget.CONDITION, "e.g. seller tier small", default=Condition()
        ),
        Field(
            "p",
            "Share p",
            Widget.NUMBER,
            "the share of protected items a fair list holds",
            "share",
            0,
            1,
            lo_open=True,
            hi_open=True,
            default=0.25,
        ),
        Field(
            "alpha",
            "Significance α",
            Widget.NUMBER,
            "lower = fewer swaps",
            "",
            0,
            0.5,
            lo_open=True,
            default=0.1,
        ),
    )
    table = {"target": "condition", "value": "p"}

    def refine(self, p: Params, where, known_items) -> list[str]:
        if p.condition is not None and p.condition.empty:
            return [f"{where}: no protected group — give a condition (e.g. seller_tier small)"]
        return unknown_items(where, p.condition, known_items)

    def needs(self, rules, table, index, now) -> Needs:
        pool = None
        for r in rules:
            mask = table.mask(r.spec.condition, now)
            pool = mask.copy() if pool is None else pool | mask
        return Needs(items=[], pool=pool)

    def apply(self, state, rules) -> None:
        for r in rules:
            protected = state.match(r.spec.condition) & state.ok
            top, swaps, short = rerank.fair_rerank(state.order, protected, state.k, r.spec.p, r.spec.alpha)
            state.put_first(top)
            for i in swaps:
                state.note(i, Reason(Code.SWAP, r.rule_id))
            if short:
                placed, prefix, need = short
                state.conflict(
                    Reason(Code.SHORT, r.rule_id, {"placed": placed, "prefix": prefix, "need": need})
                )

    def sentence(self, p: Params) -> str:
        return f"a fair share for {p.condition.describe()} (FA*IR p {p.p:g}, α {p.alpha:g})"


def in_force(rules) -> tuple[str | None, Params]:
    """The fairness rule in force among ``rules`` (the first enabled, valid one) and its parameters; without
    one, (None, the default group at the default share): what 'protected' means in the list metrics."""
    for r in rules:
        if r.kind == "fairness" and r.enabled:
            try:
                return r.rule_id, r.spec
            except InputError:  # an invalid saved rule: the next one, or the default
                continue
    return None, Params(DEFAULT_GROUP, 0.25, 0.1)


def protected_meaning(rules) -> str:
    """'Protected' in words, for the impact and preview metrics."""
    rule_id, p = in_force(rules)
    if rule_id is None:
        return f"{p.condition.describe()} — no fairness rule is in force, so the default group is counted"
    return f"{p.condition.describe()} — the protected group of fairness rule {rule_id} (p {p.p:g}, α {p.alpha:g})"


KIND = Fairness()
