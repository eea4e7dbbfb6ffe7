"""The diff between the draft and the live release: rules added, removed and changed (by rule id, field
by field), and whether the model changed. It remembers the newest release it was computed against, so a
publish from it is refused when somebody published in between."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from core.ranking.rule_sets import load_rule_set
from core.ranking.rules import Rule, RuleSet
from core.release.state import DraftRef, Release, current_draft, release_state


@dataclass(frozen=True)
class FieldChange:
    field: str  # e.g. "params.slot", "scope", "params.condition.category"
    live: Any
    draft: Any


@dataclass(frozen=True)
class RuleChange:
    rule_id: str
    kind: str
    change: str  # added | removed | changed
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True)
class ReleaseDiff:
    live: Release | None
    head_id: int | None  # give it back to publish(expected_head=…)
    draft: DraftRef  # and this to publish(expected_draft=…)
    rules: tuple[RuleChange, ...]

    @property
    def model_changed(self) -> bool:
        return self.live is None or self.live.run_id != self.draft.run_id

    @property
    def has_changes(self) -> bool:
        return bool(self.rules) or self.model_changed

    def table(self) -> pl.DataFrame:
        """One row per changed field (a whole added or removed rule is one row)."""
        rows = []
        for c in self.rules:
            for f in c.fields or (FieldChange("", None, None),):
                rows.append({"rule_id": c.rule_id, "kind": c.kind, "change": c.change, "field": f.field,
                             "live": _text(f.live), "draft": _text(f.draft)})  # fmt: skip
        schema = dict.fromkeys(("rule_id", "kind", "change", "field", "live", "draft"), pl.Utf8)
        return pl.DataFrame(rows, schema=schema)


def _text(value) -> str | None:
    return None if value is None else str(value)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _fields(rule: Rule) -> dict[str, Any]:
    fields = _flat(rule.to_dict())
    fields.pop("rule_id", None)
    return fields


def rule_changes(live: RuleSet | None, draft: RuleSet) -> tuple[RuleChange, ...]:
    """Rules added, removed and changed (field by field, and the position among the rules both keep)."""
    before = {r.rule_id: r for r in (live.rules if live else [])}
    after = {r.rule_id: r for r in draft.rules}
    kept_before = [i for i in before if i in after]
    kept_after = [i for i in after if i in before]
    changes = [RuleChange(i, r.kind, "removed") for i, r in before.items() if i not in after]
    for rule_id, rule in after.items():
        if rule_id not in before:
            shown = tuple(FieldChange(k, None, v) for k, v in _fields(rule).items() if v not in (None, ""))
            changes.append(RuleChange(rule_id, rule.kind, "added", shown))
            continue
        was, now = _fields(before[rule_id]), _fields(rule)
        fields = [
            FieldChange(k, was.get(k), now.get(k))
            for k in sorted(was.keys() | now.keys())
            if was.get(k) != now.get(k)
        ]
        if kept_before.index(rule_id) != kept_after.index(rule_id):
            fields.append(
                FieldChange("position", kept_before.index(rule_id) + 1, kept_after.index(rule_id) + 1)
            )
        if fields:
            changes.append(RuleChange(rule_id, rule.kind, "changed", tuple(fields)))
    return tuple(changes)


def release_diff(rule_set_id: str = "default", db_path=None) -> ReleaseDiff:
    """The draft (latest saved rule-set version + active run) against the live release."""
    state = release_state(db_path)
    draft = current_draft(rule_set_id, db_path)
    draft_rules = load_rule_set(rule_set_id, db_path=db_path)
    live = state.live
    live_rules = (
        load_rule_set(live.rule_set_id, live.rule_set_version, db_path)
        if live and live.rule_set_version
        else None
    )
    return ReleaseDiff(live, state.head_id, draft, rule_changes(live_rules, draft_rules))


def unsaved_edits(draft: RuleSet | None, db_path=None) -> bool:
    """Whether an editor's draft (the Rules page's) differs from the latest saved version."""
    if draft is None:
        return False
    saved = load_rule_set(draft.rule_set_id, db_path=db_path)
    return draft.version != saved.version or draft.to_json() != saved.to_json()
