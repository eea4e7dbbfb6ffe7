"""Rule sets in the store (optimistic versions, audited) and as an editable table."""

from __future__ import annotations

import uuid
from datetime import datetime

import polars as pl

from core import store
from core.errors import ConflictError, InputError
from core.ranking.rules import KINDS, Rule, RuleSet, condition_text, parse_condition, validate

# the editor table (``st.data_editor``): one row per rule
TABLE_SCHEMA = {
    "rule_id": pl.Utf8,
    "kind": pl.Utf8,
    "target": pl.Utf8,
    "value": pl.Float64,
    "slot": pl.Int64,
    "scope": pl.Utf8,
    "starts_at": pl.Datetime,
    "ends_at": pl.Datetime,
    "enabled": pl.Boolean,
    "note": pl.Utf8,
}


def load_rule_set(rule_set_id: str = "default", version: int | None = None, db_path=None) -> RuleSet:
    """The latest (or a given) saved version; an empty set at version 0 when none was saved."""
    sql = "SELECT version, rules FROM rule_sets WHERE rule_set_id = ? "
    params: list = [rule_set_id]
    if version is not None:
        sql += "AND version = ? "
        params.append(version)
    rows = store.query(sql + "ORDER BY version DESC LIMIT 1", params, db_path=db_path).to_dicts()
    if not rows:
        if version is not None:
            raise InputError(f"rule set '{rule_set_id}' has no version {version}")
        return RuleSet(rule_set_id=rule_set_id, version=0)
    return RuleSet.from_json(rows[0]["rules"], rule_set_id, rows[0]["version"])


def save_rule_set(
    rule_set: RuleSet, expected_version: int, saved_by: str, note: str = "", db_path=None
) -> RuleSet:
    """Save as version expected_version + 1, or refuse if somebody saved in between."""
    with store.transaction(db_path) as con:
        latest = con.execute(
            "SELECT version, saved_by, saved_at FROM rule_sets WHERE rule_set_id = ? ORDER BY version DESC LIMIT 1",
            [rule_set.rule_set_id],
        ).fetchall()
        current = latest[0][0] if latest else 0
        if current != expected_version:
            who, when = latest[0][1], latest[0][2]
            raise ConflictError(
                f"rule set '{rule_set.rule_set_id}' was saved by {who} at {when:%H:%M:%S} as version {current} "
                f"after you loaded version {expected_version} — reload and re-apply your change"
            )
        saved = RuleSet(
            rule_set.rule_set_id, current + 1, rule_set.name, rule_set.rules, rule_set.exclude_purchased
        )
        con.execute(
            "INSERT INTO rule_sets VALUES (?, ?, ?, ?, ?, now(), ?)",
            [saved.rule_set_id, saved.version, saved.name, saved.to_json(), saved_by, note],
        )
        store.audit(
            con,
            saved_by,
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


def draft_with(rule_set: RuleSet, kind: str, **params) -> RuleSet:
    """A copy of the draft with one more rule (the preview's "pin this here" / "block this")."""
    if kind == "block":
        params = {"condition": {"item_id": [params["item_id"]]}}
    rule = Rule(rule_id=f"{kind}-{uuid.uuid4().hex[:6]}", kind=kind, params=params)
    return rule_set.with_rules([*rule_set.rules, rule])


def _value(rule: Rule) -> float | None:
    p = rule.params
    return {
        "boost": p.get("factor"),
        "bury": p.get("factor"),
        "reserve": p.get("slots"),
        "cap": p.get("max"),
        "diversity": p.get("lambda", p.get("theta")),
        "fairness": p.get("p"),
    }.get(rule.kind)


def _target(rule: Rule) -> str:
    p = rule.params
    if rule.kind == "pin":
        return f"item_id={p.get('item_id')}"
    if rule.kind == "cap":
        return str(p.get("attribute", ""))
    if rule.kind == "diversity":
        text = str(p.get("method", "mmr"))
        return text + (f";calibration={p['calibration']}" if p.get("calibration") else "")
    return condition_text(p.get("condition", {}))


def rules_to_frame(rule_set: RuleSet) -> pl.DataFrame:
    """One row per rule, for ``st.data_editor``."""
    rows = [
        {
            "rule_id": r.rule_id,
            "kind": r.kind,
            "target": _target(r),
            "value": _value(r),
            "slot": r.params.get("slot") if r.kind == "pin" else None,
            "scope": r.scope,
            "starts_at": r.starts_at,
            "ends_at": r.ends_at,
            "enabled": r.enabled,
            "note": r.note,
        }
        for r in rule_set.rules
    ]
    return pl.DataFrame(rows, schema=TABLE_SCHEMA)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v) or (isinstance(v, str) and not v.strip())


def _when(v):
    if _missing(v):
        return None
    if hasattr(v, "to_pydatetime"):
        return v.to_pydatetime()
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def rules_from_frame(frame) -> list[Rule]:
    """Rows of the editor table back into rules; an InputError names the row and the field."""
    rows = frame.to_dicts() if isinstance(frame, pl.DataFrame) else frame.to_dict("records")
    rules = []
    for n, row in enumerate(rows, start=1):
        where = f"row {n}"
        kind = str(row.get("kind") or "").strip()
        if kind not in KINDS:
            raise InputError(f"{where}: kind '{kind}' is not one of {', '.join(KINDS)}")
        target = "" if _missing(row.get("target")) else str(row["target"])
        value = None if _missing(row.get("value")) else float(row["value"])
        params: dict
        if kind == "pin":
            cond = parse_condition(target, where)
            if len(cond.get("item_id", [])) != 1:
                raise InputError(f"{where}: a pin's target is item_id=<one id>")
            if _missing(row.get("slot")):
                raise InputError(f"{where}: a pin needs a slot")
            params = {"item_id": cond["item_id"][0], "slot": int(row["slot"])}
        elif kind == "cap":
            params = {"attribute": target.strip(), "max": int(value or 0)}
        elif kind == "diversity":
            method, _, rest = target.partition(";")
            method = method.strip() or "mmr"
            params = {
                "method": method,
                ("theta" if method == "dpp" else "lambda"): 0.5 if value is None else value,
            }
            if rest.startswith("calibration="):
                params["calibration"] = float(rest.split("=", 1)[1])
        else:
            params = {"condition": parse_condition(target, where)}
            if kind in ("boost", "bury"):
                params["factor"] = value if value is not None else (1.5 if kind == "boost" else 0.5)
            elif kind == "reserve":
                params["slots"] = int(value or 0)
            elif kind == "fairness":
                params["p"] = value if value is not None else 0.25
                params["alpha"] = 0.1
        try:
            starts, ends = _when(row.get("starts_at")), _when(row.get("ends_at"))
        except ValueError as exc:
            raise InputError(f"{where}: a date is not readable ({exc})", fix="use 2026-11-01 09:00") from None
        rules.append(
            Rule(
                rule_id=str(row.get("rule_id") or f"{kind}-{n}"),
                kind=kind,
                params=params,
                scope=str(row.get("scope") or "all"),
                starts_at=starts,
                ends_at=ends,
                enabled=bool(True if row.get("enabled") is None else row.get("enabled")),
                note=str(row.get("note") or ""),
            )
        )
    return rules


def apply_edits(draft: RuleSet, frame, db_path=None) -> RuleSet:
    """The draft with the editor table's rules, validated against the catalog; an InputError lists every
    problem and the draft is left as it was."""
    candidate = draft.with_rules(rules_from_frame(frame))
    known = set(store.query("SELECT item_id FROM items", db_path=db_path)["item_id"].to_list())
    errors = validate(candidate, known)
    if errors:
        raise InputError("The draft was not changed:\n\n" + "\n".join(f"- {e}" for e in errors))
    return candidate
