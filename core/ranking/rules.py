"""Merchandising rules as data: a ``Rule`` (kind + parameters + scope + time window) and a ``RuleSet``.

What each kind's parameters are, mean and allow lives in its module under ``core.ranking.kinds``; a rule
keeps its parameters as the JSON form (``params``) and parses them once into the kind's typed dataclass
(``spec``). A scope is ``"all"``, ``"users: u1, u2"`` or a segment expression over user attributes such
as ``region == "north" and device in ["mobile", "tablet"]`` (see ``core.ranking.segments``).

The JSON form of a rule set (what ``rule_sets`` stores, and what a release will carry)::

    {"rule_set_id": "default", "version": 3, "name": "", "exclude_purchased": true,
     "rules": [{"rule_id": "pin-1", "kind": "pin", "params": {"item_id": "i00042", "slot": 1},
                "scope": "all", "starts_at": null, "ends_at": "2026-12-01T00:00:00", "enabled": true,
                "note": "launch"}]}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime
from functools import cached_property
from typing import Any

from core.errors import InputError
from core.ranking import kinds
from core.ranking.conditions import CONDITION_KEYS, naive_utc
from core.ranking.kinds.base import Widget, missing
from core.ranking.segments import scope_matches


def as_time(v) -> datetime | None:
    """A rule's start or end as naive UTC: None for any blank (None, NaN, pandas' NaT, ''); a date is midnight."""
    if missing(v):
        return None
    if isinstance(v, datetime):
        t = v if type(v) is datetime else datetime.fromisoformat(v.isoformat())  # pandas' Timestamp
    elif isinstance(v, date):
        t = datetime(v.year, v.month, v.day)
    else:
        t = datetime.fromisoformat(str(v).strip())
    return naive_utc(t)


@dataclass
class Rule:
    rule_id: str
    kind: str
    params: dict = field(default_factory=dict)
    scope: str = "all"
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    enabled: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        self.starts_at, self.ends_at = as_time(self.starts_at), as_time(self.ends_at)
        self.scope = (self.scope or "all").strip() or "all"
        self.params = dict(self.params or {})
        kind = kinds.find(self.kind)
        condition = (
            next((f.name for f in kind.fields if f.widget is Widget.CONDITION), None) if kind else None
        )
        if condition:  # condition fields given flat (``{"brand": "x"}``) move into the condition
            flat = {k: self.params.pop(k) for k in list(self.params) if k in CONDITION_KEYS}
            if flat:
                self.params[condition] = {**flat, **(self.params.get(condition) or {})}

    @cached_property
    def spec(self) -> Any:
        """The typed parameters of the rule's kind (parsed once; an InputError when they are invalid)."""
        return kinds.get(self.kind).parse(self.params, f"rule {self.rule_id}")

    def active_at(self, now: datetime) -> bool:
        now = naive_utc(now)
        return (
            self.enabled
            and (self.starts_at is None or self.starts_at <= now)
            and (self.ends_at is None or now < self.ends_at)
        )

    def applies_to(self, user_attrs: dict) -> bool:
        return scope_matches(self.scope, user_attrs)

    def sentence(self) -> str:
        """What the rule does, in words (its kind's sentence)."""
        return self._words

    @cached_property
    def _words(self) -> str:
        try:
            return kinds.get(self.kind).sentence(self.spec)
        except InputError as exc:
            return f"{self.kind} — not applied: {exc}"

    def describe(self) -> str:
        return f"{self.rule_id}: {self._words}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["starts_at"] = self.starts_at.isoformat() if self.starts_at else None
        d["ends_at"] = self.ends_at.isoformat() if self.ends_at else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Rule:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def upgrade(rules: list[Rule]) -> list[Rule]:
    """Rules saved in an older form → the rules they mean today (each kind knows its own old forms)."""
    out: list[Rule] = []
    for rule in rules:
        kind = kinds.find(rule.kind)
        out.extend(kind.upgrade(rule) if kind else [rule])
    return out


@dataclass
class RuleSet:
    rule_set_id: str = "default"
    version: int = 0
    name: str = ""
    rules: list[Rule] = field(default_factory=list)
    exclude_purchased: bool = True
    saved_by: str | None = None
    saved_at: datetime | None = None
    note: str = ""

    def __post_init__(self) -> None:
        self.rules = upgrade(list(self.rules))

    def with_rules(self, rules: list[Rule]) -> RuleSet:
        return replace(self, rules=list(rules))

    def rules_for(self, user_attrs: dict | None, now: datetime) -> list[Rule]:
        attrs = dict(user_attrs or {})
        return [r for r in self.rules if r.active_at(now) and r.applies_to(attrs)]

    def content(self) -> str:
        """What the rule set says (its rules and settings), without who saved it when: equal content,
        equal text, so a draft can be compared with a saved version."""
        return json.dumps(
            {"exclude_purchased": self.exclude_purchased, "rules": [r.to_dict() for r in self.rules]},
            sort_keys=True,
            default=str,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "rule_set_id": self.rule_set_id,
                "version": self.version,
                "name": self.name,
                "exclude_purchased": self.exclude_purchased,
                "rules": [r.to_dict() for r in self.rules],
            }
        )

    @classmethod
    def from_json(
        cls, text: str | dict | list, rule_set_id: str | None = None, version: int | None = None
    ) -> RuleSet:
        data = json.loads(text) if isinstance(text, str) else text
        if isinstance(data, list):
            data = {"rules": data}
        data = dict(data)
        if rule_set_id is not None:
            data["rule_set_id"] = rule_set_id
        if version is not None:
            data["version"] = version
        return cls(
            rule_set_id=data.get("rule_set_id", "default"),
            version=int(data.get("version", 0)),
            name=data.get("name", ""),
            rules=[Rule.from_dict(r) for r in data.get("rules", [])],
            exclude_purchased=bool(data.get("exclude_purchased", True)),
        )


# --- validation ----------------------------------------------------------------------------------


def _id_problems(rule: Rule, n: int, seen: dict[str, int]) -> list[str]:
    if missing(rule.rule_id):
        return [f"rule {n} ({rule.kind}): no rule id — give it a short name"]
    if rule.rule_id in seen:
        return [f"rule {n} ({rule.kind}): id {rule.rule_id!r} is also used by rule {seen[rule.rule_id]}"]
    seen[rule.rule_id] = n
    return []


def _scope_and_window_problems(rule: Rule, tag: str) -> list[str]:
    problems = []
    try:
        scope_matches(rule.scope, {})
    except InputError as exc:
        problems.append(f"{tag}: scope — {exc}")
    if rule.starts_at and rule.ends_at and rule.starts_at >= rule.ends_at:
        problems.append(
            f"{tag}: starts_at {rule.starts_at:%Y-%m-%d %H:%M} is not before ends_at {rule.ends_at:%Y-%m-%d %H:%M}"
        )
    return problems


def validate(rule_set: RuleSet, known_items: set[str] | None = None) -> list[str]:
    """Errors a person can act on, each naming the rule (1-based, with kind) and the field;
    ``known_items``: the catalog's item ids, to check the items rules name (None: not checked)."""
    errors: list[str] = []
    seen: dict[str, int] = {}
    for n, rule in enumerate(rule_set.rules, start=1):
        tag = f"rule {n} ({rule.kind})"
        errors += _id_problems(rule, n, seen)
        kind = kinds.find(rule.kind)
        if kind is None:
            errors.append(f"rule {n}: unknown kind {rule.kind!r} — use one of {', '.join(kinds.names())}")
            continue
        errors += kind.problems(rule.params, tag, known_items)
        errors += _scope_and_window_problems(rule, tag)
    return errors


__all__ = ["CONDITION_KEYS", "Rule", "RuleSet", "as_time", "scope_matches", "upgrade", "validate"]
