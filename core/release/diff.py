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


@dataclass
class PublishImpact:
    """What publishing the draft changes for a sample of shoppers, against the live release's rules."""

    users: int
    homepages_changed: int
    summary: pl.DataFrame  # metric, live, draft
    per_rule: pl.DataFrame  # the draft's rules: homepages each one changes


IMPACT_METRICS = {  # the rules-impact metric → how the Publish page names it
    "score_kept": "score kept (share of the model's best)",
    "protected_share": "exposure of protected groups (share of slots)",
    "intra_list_diversity": "intra-list diversity",
    "categories_covered": "categories covered",
    "calibration_kl": "calibration KL",
}


def publish_impact(diff: ReleaseDiff, n_users: int = 200, db_path=None) -> PublishImpact:
    """The impact summary of the Publish page: the rules-impact code (``core.ranking.impact``) run on the
    live release's rules and on the draft's, for the same sample of shoppers, with the draft's model.
    The one caller of ``core.ranking.impact``: a change of its API changes only this function."""
    from core.ranking.homepage import homepages_for
    from core.ranking.impact import rule_set_impact, sample_users

    draft = load_rule_set(diff.draft.rule_set_id, diff.draft.rule_set_version or None, db_path)
    version = diff.live.rule_set_version if diff.live else 0
    live = (
        load_rule_set(diff.live.rule_set_id, version, db_path) if version else RuleSet(draft.rule_set_id, 0)
    )
    before, after = (
        rule_set_impact(live, n_users, db_path=db_path),
        rule_set_impact(draft, n_users, db_path=db_path),
    )
    users = sample_users(n_users, db_path=db_path)
    shown = lambda rules: [
        [s.item_id for s in v.ruled.slots] for v in homepages_for(users, rules, db_path=db_path)
    ]  # noqa: E731
    changed = sum(a != b for a, b in zip(shown(live), shown(draft)))

    def column(impact) -> dict[str, float | None]:
        values = dict(zip(impact.summary["metric"], impact.summary["with rules"]))
        lost = values.get("score_lost")
        return {**values, "score_kept": None if lost is None else 1.0 - lost}

    was, will = column(before), column(after)
    summary = pl.DataFrame(
        {
            "metric": list(IMPACT_METRICS.values()),
            "live": [was.get(k) for k in IMPACT_METRICS],
            "draft": [will.get(k) for k in IMPACT_METRICS],
        },
        schema={"metric": pl.Utf8, "live": pl.Float64, "draft": pl.Float64},
    )
    return PublishImpact(len(users), changed, summary, after.per_rule)


def unsaved_edits(draft: RuleSet | None, db_path=None) -> bool:
    """Whether an editor's draft (the Rules page's) differs from the latest saved version."""
    if draft is None:
        return False
    saved = load_rule_set(draft.rule_set_id, db_path=db_path)
    return draft.version != saved.version or draft.to_json() != saved.to_json()
