"""The ranking pipeline, pure: candidates + rule set → one homepage, with the reasons for every slot.

A short loop over ordered stages (``kinds.base.Stage``): candidates (stock, purchases) → exclusions →
scores → re-rank → slot shares → pins. Each stage runs the rule kinds registered for it, in their order,
each kind with every rule of that kind that applies to the shopper now; the pipeline's own steps between
stages (eligibility, sorting by relevance, assembling the slots) are the ``_BEFORE`` / ``_AFTER`` hooks.
Slot shares come after the re-rankers so that diversity cannot undo a guaranteed share, and pins last so
that they always hold. Conflicts are reported as reasons, never dropped.

Other surfaces (similar items, search, the storefront's rows) rank with ``rank_list``: the same stages
up to the scores, so a blocked item is blocked everywhere and a boost boosts everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np

from core.errors import InputError
from core.ranking import kinds
from core.ranking.kinds.base import Kind, Stage
from core.ranking.reasons import Reason, ReasonCode
from core.ranking.rules import Rule, RuleSet
from core.ranking.state import Candidates, Homepage, RankingState, UserContext, relevance


class Invalid(ReasonCode):
    """A rule that reached the pipeline although it is not valid (an old saved version, a hand-made set)."""

    NOT_APPLIED = ("rule.invalid", "rule not applied", "rule {rule} was not applied: {problem}")


def in_stock(c: Candidates) -> np.ndarray:
    """(M,) bool: in stock and scored (what a pin needs)."""
    ok = c.column("in_stock", True).astype(bool) if c.has("in_stock") else np.ones(len(c), bool)
    return ok & np.isfinite(c.scores)


def eligible(
    user: UserContext, c: Candidates, exclude_purchased: bool, stocked: np.ndarray | None = None
) -> np.ndarray:
    """(M,) bool: in stock, scored, and (with ``exclude_purchased``) not bought before."""
    ok = (in_stock(c) if stocked is None else stocked).copy()
    bought = user.purchased
    if exclude_purchased and bought and not bought.isdisjoint(c.item_ids):
        ok &= np.fromiter((i not in bought for i in c.item_ids), dtype=bool, count=len(c))
    return ok


def plan(rules: list[Rule], state: RankingState | None = None) -> list[tuple[Kind, list[Rule]]]:
    """The rules grouped by kind, in pipeline order; a rule whose kind or parameters are invalid is left out
    (and reported on ``state``)."""
    by_kind: dict[str, list[Rule]] = {}
    for r in rules:
        try:
            r.spec  # noqa: B018 (parsed once, here)
        except InputError as exc:
            if state is not None:
                state.conflict(Reason(Invalid.NOT_APPLIED, r.rule_id, {"problem": str(exc)}))
            continue
        by_kind.setdefault(r.kind, []).append(r)
    return [(kind, by_kind[kind.name]) for kind in kinds.all_kinds() if kind.name in by_kind]


def _candidates(s: RankingState) -> None:
    s.stocked = in_stock(s.c)
    s.ok = eligible(s.user, s.c, s.exclude_purchased, s.stocked)


def _exclude(s: RankingState) -> None:
    s.ok &= ~s.blocked


def _sort(s: RankingState) -> None:
    order = np.argsort(-np.where(s.ok, s.rel, -np.inf), kind="stable")
    s.order = order[s.ok[order]].tolist()  # vectorised: a Python loop over every candidate cost ~1 ms
    s.scored_top = set(s.order[: s.k])


def _assemble(s: RankingState) -> None:
    """Pinned items on their slots, everything else in its order around them."""
    pinned_items = set(s.pinned.values())
    rest = (i for i in s.order if i not in pinned_items)  # read only as far as the slots need
    for slot in range(1, s.k + 1):
        i = s.pinned[slot] if slot in s.pinned else next(rest, None)
        if i is not None:
            s.final.append(i)


_BEFORE: dict[Stage, Callable[[RankingState], None]] = {Stage.CANDIDATES: _candidates}
_AFTER: dict[Stage, Callable[[RankingState], None]] = {
    Stage.EXCLUSIONS: _exclude,
    Stage.SCORES: _sort,
    Stage.PINS: _assemble,
}


def _start(user: UserContext, c: Candidates, k: int, now: datetime, exclude_purchased: bool) -> RankingState:
    n = len(c)
    return RankingState(
        user,
        c,
        k,
        now,
        ok=np.ones(n, bool),
        rel=relevance(c.scores),
        blocked=np.zeros(n, bool),
        exclude_purchased=exclude_purchased,
    )


def _run(state: RankingState, rules: list[Rule], last: Stage) -> list[tuple[Kind, list[Rule]]]:
    steps = plan(rules, state)
    for stage in Stage:
        if stage > last:
            break
        if stage in _BEFORE:
            _BEFORE[stage](state)
        for kind, rs in steps:
            if kind.stage == stage:
                kind.apply(state, rs)
        if stage in _AFTER:
            _AFTER[stage](state)
    return steps


def _ranked(user: UserContext, c: Candidates, rule_set: RuleSet, k: int, now: datetime):
    """(state after every stage, the plan, the rules that apply to the shopper now)."""
    rules = rule_set.rules_for({"user_id": user.user_id, **user.attrs}, now)
    state = _start(user, c, k, now, rule_set.exclude_purchased)
    return state, _run(state, rules, Stage.PINS), rules


def rank_homepage(user: UserContext, c: Candidates, rule_set: RuleSet, k: int, now: datetime) -> Homepage:
    """The homepage of ``k`` slots for this shopper: every stage, then each kind's checks on the result."""
    state, steps, rules = _ranked(user, c, rule_set, k, now)
    for kind, rs in steps:
        kind.check(state, rs)
    return state.homepage([r.describe() for r in rules])


def homepage_items(user: UserContext, c: Candidates, rule_set: RuleSet, k: int, now: datetime) -> list[str]:
    """The items of ``rank_homepage``'s slots, in slot order, without its slots' reasons and the kinds'
    checks (which only report conflicts): what the audit's population path needs."""
    state, _, _ = _ranked(user, c, rule_set, k, now)
    return [c.item_ids[i] for i in state.final]


def rank_list(user: UserContext, c: Candidates, rule_set: RuleSet, k: int, now: datetime) -> Homepage:
    """A list that is not the homepage (similar items, search, a row): the stages up to the scores."""
    rules = rule_set.rules_for({"user_id": user.user_id, **user.attrs}, now)
    state = _start(user, c, k, now, rule_set.exclude_purchased)
    _run(state, rules, Stage.SCORES)
    state.final = state.order[:k]
    return state.homepage([r.describe() for r in rules])


def model_only(user: UserContext, c: Candidates, k: int, exclude_purchased: bool = True) -> Homepage:
    """The same candidates ranked by the model alone (for the side-by-side preview)."""
    state = _start(user, c, k, datetime.min, exclude_purchased)
    _candidates(state)
    state.final = [
        int(i) for i in np.argsort(-np.where(state.ok, c.scores, -np.inf), kind="stable")[:k] if state.ok[i]
    ]
    return state.homepage([])
