"""Rule sets in the store (optimistic versions, audited), drafts (add, change, remove a rule; compare with a
saved version; restore an old one) and the editor table, whose rows each kind writes and reads."""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl

from core import store
from core.errors import ConflictError, InputError
from core.ranking import kinds
from core.ranking.kinds.base import missing
from core.ranking.rules import Rule, RuleSet, as_time, validate
from core.release.roles import Account, Permission, require

# the editor table (``st.data_editor``): one row per rule; ``options`` holds the parameters that have no
# column of their own (``within=6``, ``alpha=0.05``)
TABLE_SCHEMA = {
    "rule_id": pl.Utf8,
    "kind": pl.Utf8,
    "target": pl.Utf8,
    "value": pl.Float64,
    "slot": pl.Int64,
    "options": pl.Utf8,
    "scope": pl.Utf8,
    "starts_at": pl.Datetime,
    "ends_at": pl.Datetime,
    "enabled": pl.Boolean,
    "note": pl.Utf8,
}


# --- versions in the store -----------------------------------------------------------------------


def load_rule_set(rule_set_id: str = "default", version: int | None = None, db_path=None) -> RuleSet:
    """The latest (or a given) saved version; an empty set at version 0 when none was saved."""
    sql = "SELECT version, rules, saved_by, saved_at, note FROM rule_sets WHERE rule_set_id = ? "
    params: list = [rule_set_id]
    if version is not None:
        sql += "AND version = ? "
        params.append(version)
    rows = store.query(sql + "ORDER BY version DESC LIMIT 1", params, db_path=db_path).to_dicts()
    if not rows:
        if version is not None:
            raise InputError(f"rule set '{rule_set_id}' has no version {version}")
        return RuleSet(rule_set_id=rule_set_id, version=0)
    row = rows[0]
    saved = RuleSet.from_json(row["rules"], rule_set_id, row["version"])
    return replace(saved, saved_by=row["saved_by"], saved_at=row["saved_at"], note=row["note"] or "")


def save_rule_set(
    rule_set: RuleSet, expected_version: int, actor: Account, note: str = "", db_path=None
) -> RuleSet:
    """Save as version expected_version + 1 in ``actor``'s name (who may edit rules: checked against the
    store inside the transaction); refuse if somebody saved in between, or if nothing changed."""
    with store.transaction(db_path) as con:
        require(actor, Permission.EDIT_RULES, con)
        saved_by = actor.username
        latest = con.execute(
            "SELECT version, saved_by, saved_at, rules FROM rule_sets WHERE rule_set_id = ? "
            "ORDER BY version DESC LIMIT 1",
            [rule_set.rule_set_id],
        ).fetchall()
        current = latest[0][0] if latest else 0
        if current != expected_version:
            who, when = latest[0][1], latest[0][2]
            raise ConflictError(
                f"rule set '{rule_set.rule_set_id}' was saved by {who} at {when:%H:%M:%S} as version {current} "
                f"after you loaded version {expected_version} — reload and re-apply your change"
            )
        before = RuleSet.from_json(latest[0][3]) if latest else RuleSet()
        if before.content() == rule_set.content():
            raise InputError(
                f"nothing to save: the draft is the same as version {current}", fix="change a rule first"
            )
        saved = replace(rule_set, version=current + 1, saved_by=saved_by, note=note)
        con.execute(
            "INSERT INTO rule_sets VALUES (?, ?, ?, ?, ?, now(), ?)",
            [saved.rule_set_id, saved.version, saved.name, saved.to_json(), saved_by, note],
        )
        store.audit(
            con,
            actor,
            "save_rule_set",
            f"{saved.rule_set_id} v{saved.version}",
            {"note": note, "rules": len(saved.rules)},
        )
    return saved


def list_versions(rule_set_id: str = "default", db_path=None) -> pl.DataFrame:
    return store.query(
        "SELECT version, saved_by, saved_at, note, json_array_length(rules -> '$.rules') AS rules "
        "FROM rule_sets WHERE rule_set_id = ? ORDER BY version DESC",
        [rule_set_id],
        db_path=db_path,
    )


def restore_as_draft(version: int, rule_set_id: str = "default", db_path=None) -> RuleSet:
    """A draft holding an old version's rules, based on the latest version (saving it makes a new one)."""
    old = load_rule_set(rule_set_id, version, db_path)
    latest = load_rule_set(rule_set_id, db_path=db_path)
    return replace(
        latest, rules=old.rules, exclude_purchased=old.exclude_purchased, note=f"restored from v{version}"
    )


# --- drafts --------------------------------------------------------------------------------------


@dataclass
class Diff:
    added: list[Rule]
    removed: list[Rule]
    changed: list[tuple[Rule, Rule]]  # (before, after), matched by rule id
    settings: list[str]  # rule-set settings that changed, in words

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.settings)

    def summary(self) -> str:
        if self.empty:
            return "no changes"
        parts = [f"{len(self.added)} added", f"{len(self.removed)} removed", f"{len(self.changed)} changed"]
        return ", ".join(p for p in parts if not p.startswith("0 ")) + (
            "; " + "; ".join(self.settings) if self.settings else ""
        )

    def lines(self) -> list[str]:
        """One line per change, for people."""
        out = [f"+ {r.describe()}" for r in self.added] + [f"− {r.describe()}" for r in self.removed]
        for before, after in self.changed:
            out.append(
                f"~ {after.rule_id}: {before.sentence()} → {after.sentence()}" + _what_else(before, after)
            )
        return out + self.settings


def _what_else(before: Rule, after: Rule) -> str:
    bits = [
        name
        for name in ("scope", "starts_at", "ends_at", "enabled", "note")
        if vars(before)[name] != vars(after)[name]
    ]
    return f" (also {', '.join(bits)})" if bits else ""


def diff(before: RuleSet, after: RuleSet) -> Diff:
    """What ``after`` changes in ``before``, rule by rule (rules are matched by id)."""
    old = {r.rule_id: r for r in before.rules}
    new = {r.rule_id: r for r in after.rules}
    settings = []
    if before.exclude_purchased != after.exclude_purchased:
        settings.append(f"exclude purchased items: {before.exclude_purchased} → {after.exclude_purchased}")
    return Diff(
        added=[r for i, r in new.items() if i not in old],
        removed=[r for i, r in old.items() if i not in new],
        changed=[(old[i], r) for i, r in new.items() if i in old and old[i].to_dict() != r.to_dict()],
        settings=settings,
    )


def new_rule_id(kind: str, taken: set[str]) -> str:
    n = 1
    while f"{kind}-{n}" in taken:
        n += 1
    return f"{kind}-{n}"


def known_items(db_path=None) -> set[str]:
    return set(store.query("SELECT item_id FROM items", db_path=db_path)["item_id"].to_list())


def checked(candidate: RuleSet, db_path=None) -> RuleSet:
    """``candidate`` if it is valid against the catalog; else an InputError lists every problem."""
    errors = validate(candidate, known_items(db_path))
    if errors:
        raise InputError("The draft was not changed:\n\n" + "\n".join(f"- {e}" for e in errors))
    return candidate


def put_rule(draft: RuleSet, rule: Rule, replaces: str | None = None, db_path=None) -> RuleSet:
    """The draft with ``rule`` added, or in place of rule ``replaces``; validated (the form's apply)."""
    rules = list(draft.rules)
    at = next((n for n, r in enumerate(rules) if r.rule_id == replaces), None)
    if at is None:
        rules.append(rule)
    else:
        rules[at] = rule
    return checked(draft.with_rules(rules), db_path)


def remove_rule(draft: RuleSet, rule_id: str) -> RuleSet:
    return draft.with_rules([r for r in draft.rules if r.rule_id != rule_id])


def draft_with(rule_set: RuleSet, kind: str, **params) -> RuleSet:
    """A copy of the draft with one more rule (the preview's "pin this here" / "block this")."""
    if kind == "block":
        params = {"condition": {"item_id": [params["item_id"]]}}
    rule = Rule(new_rule_id(kind, {r.rule_id for r in rule_set.rules}), kind, params)
    return rule_set.with_rules([*rule_set.rules, rule])


# --- the editor table ----------------------------------------------------------------------------


def _cells(rule: Rule) -> dict:
    kind = kinds.find(rule.kind)
    try:
        return kind.to_row(rule.spec)
    except InputError:  # not valid (an old saved rule): its parameters as they are, for a person to fix
        options = ";".join(f"{k}={v}" for k, v in rule.params.items())
        return {"target": "", "value": None, "slot": None, "options": options}


def rules_to_frame(rule_set: RuleSet) -> pl.DataFrame:
    """One row per rule, for ``st.data_editor``; each kind writes its own cells."""
    rows = [
        {
            "rule_id": r.rule_id,
            "kind": r.kind,
            **_cells(r),
            "scope": r.scope,
            "starts_at": r.starts_at,
            "ends_at": r.ends_at,
            "enabled": r.enabled,
            "note": r.note,
        }
        for r in rule_set.rules
    ]
    return pl.DataFrame(rows, schema=TABLE_SCHEMA)


def _rule_from_row(row: dict, n: int, taken: set[str]) -> Rule:
    where = f"row {n}"
    name = "" if missing(row.get("kind")) else str(row["kind"]).strip()
    kind = kinds.find(name)
    if kind is None:
        raise InputError(f"{where}: kind '{name}' is not one of {', '.join(kinds.names())}")
    try:
        starts, ends = as_time(row.get("starts_at")), as_time(row.get("ends_at"))
    except ValueError as exc:
        raise InputError(f"{where}: a date is not readable ({exc})", fix="use 2026-11-01 09:00") from None
    rule_id = new_rule_id(kind.name, taken) if missing(row.get("rule_id")) else str(row["rule_id"]).strip()
    taken.add(rule_id)
    return Rule(
        rule_id=rule_id,
        kind=kind.name,
        params=kind.from_row(row, where),
        scope="all" if missing(row.get("scope")) else str(row["scope"]),
        starts_at=starts,
        ends_at=ends,
        enabled=True if missing(row.get("enabled")) else bool(row["enabled"]),
        note="" if missing(row.get("note")) else str(row["note"]),
    )


def rules_from_frame(frame) -> list[Rule]:
    """Rows of the editor table (polars, or the pandas frame ``st.data_editor`` returns) back into rules; a
    blank cell is the kind's default; an InputError names the row and the field."""
    rows = frame.to_dicts() if isinstance(frame, pl.DataFrame) else frame.to_dict("records")
    taken = {str(r["rule_id"]).strip() for r in rows if not missing(r.get("rule_id"))}
    return [_rule_from_row(row, n, taken) for n, row in enumerate(rows, start=1)]


def apply_edits(draft: RuleSet, frame, db_path=None) -> RuleSet:
    """The draft with the editor table's rules, validated against the catalog; an InputError lists every
    problem and the draft is left as it was."""
    return checked(draft.with_rules(rules_from_frame(frame)), db_path)
