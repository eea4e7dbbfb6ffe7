"""Merchandising rules as data: rule sets, scopes, conditions, validation, table form, versions.

A ``Rule`` is plain data (kind + params + scope + window); ``core.ranking.pipeline`` applies
them. Kinds and their params (``condition`` is a dict, see ``CONDITION_KEYS``; keys combine with AND):

- pin {item_id, slot}                 - block {condition}
- boost / bury {condition, factor | delta}   (factor multiplies the score, sign-aware; delta adds)
- reserve {condition, slots, within}  (at least ``slots`` of the first ``within`` slots, default k)
- cap {attribute, max, top_k, depth}  (at most ``max`` per brand/category/seller in the top ``top_k``)
- diversity {method: mmr, lambda | method: dpp, theta; calibration}   - fairness {condition, p, alpha}

A scope is ``"all"``, ``"users: u1, u2"`` or a segment expression over user attributes such as
``region == "north" and device in ["mobile", "tablet"]`` (see ``core.ranking.segments``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from core.errors import InputError
from core.ranking.segments import parse_segment, scope_matches

KINDS = ("pin", "block", "boost", "bury", "reserve", "cap", "diversity", "fairness")
CONDITION_KEYS = (
    "item_id",
    "category",
    "brand",
    "seller_id",
    "seller_tier",
    "price_min",
    "price_max",
    "new_days",
    "promoted",
)
CAP_ATTRIBUTES = ("category", "brand", "seller_id", "seller_tier")
DEFAULT_K_MAX = 24


def _naive(t: datetime | None) -> datetime | None:
    if t is None or t.tzinfo is None:
        return t
    return t.replace(tzinfo=None) - (t.utcoffset() or timedelta())  # as naive UTC


def _as_time(v: Any) -> datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return _naive(v)
    return _naive(datetime.fromisoformat(str(v)))


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
        self.starts_at, self.ends_at = _as_time(self.starts_at), _as_time(self.ends_at)
        self.scope = (self.scope or "all").strip() or "all"
        if self.kind not in ("pin", "cap", "diversity"):  # condition keys given flat move into the condition
            flat = {k: self.params.pop(k) for k in list(self.params) if k in CONDITION_KEYS}
            if flat:
                self.params["condition"] = {**flat, **self.params.get("condition", {})}

    @property
    def condition(self) -> dict:
        return self.params.get("condition") or {}

    def active_at(self, now: datetime) -> bool:
        now = _naive(now)
        return (
            self.enabled
            and (self.starts_at is None or self.starts_at <= now)
            and (self.ends_at is None or now < self.ends_at)
        )

    def applies_to(self, user_attrs: dict) -> bool:
        return scope_matches(self.scope, user_attrs)

    def describe(self) -> str:
        p = self.params
        bits = {
            "pin": lambda: f"pin {p.get('item_id')} to slot {p.get('slot')}",
            "cap": lambda: f"at most {p.get('max')} per {p.get('attribute')} in top {p.get('top_k', 'k')}",
            "diversity": lambda: f"{p.get('method', 'mmr')} diversity",
            "reserve": lambda: f"reserve {p.get('slots')} slots for {condition_text(self.condition)}",
            "fairness": lambda: (
                f"FA*IR p={p.get('p')} α={p.get('alpha', 0.1)} for {condition_text(self.condition)}"
            ),
        }
        what = bits[self.kind]() if self.kind in bits else f"{self.kind} {condition_text(self.condition)}"
        return f"{self.rule_id}: {what}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["starts_at"] = self.starts_at.isoformat() if self.starts_at else None
        d["ends_at"] = self.ends_at.isoformat() if self.ends_at else None
        return d


def condition_text(cond: dict) -> str:
    """The table form of a condition, read back by ``parse_condition``: ``category=a.b;brand=X;promoted``."""
    parts = []
    for key, v in cond.items():
        if v is None or v == "" or v == []:
            continue
        if key == "promoted":
            parts.append("promoted" if v else "promoted=false")
        elif isinstance(v, (list, tuple)):
            parts.append(f"{key}={','.join(map(str, v))}")
        elif isinstance(v, float):
            parts.append(f"{key}={v:g}")
        else:
            parts.append(f"{key}={v}")
    return ";".join(parts)


def parse_condition(text: str, where: str = "condition") -> dict:
    """``item_id=a,b;category=a.b;brand=X;seller_id=S;seller_tier=small;price_min=1;price_max=9;new_days=14;
    promoted`` → a condition dict; an InputError names ``where`` and the field."""
    cond: dict = {}
    fix = "write field=value pairs joined by ';', e.g. category=beauty.skin;price_max=20;promoted"
    for part in (text or "").split(";"):
        part = part.strip()
        if not part:
            continue
        key, eq, value = (s.strip() for s in part.partition("="))
        if key not in CONDITION_KEYS:
            raise InputError(
                f"{where}: unknown condition field {key!r} (use {', '.join(CONDITION_KEYS)})", fix=fix
            )
        if key == "promoted":
            if eq and value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise InputError(f"{where}, field promoted: {value!r} is not true/false", fix=fix)
            cond[key] = not eq or value.lower() in ("true", "1", "yes")
            continue
        if not value:
            raise InputError(f"{where}, field {key}: no value", fix=fix)
        if key in ("price_min", "price_max", "new_days"):
            try:
                cond[key] = float(value)
            except ValueError:
                raise InputError(f"{where}, field {key}: {value!r} is not a number", fix=fix) from None
        elif key == "category":
            cond[key] = value
        else:
            cond[key] = _listify(value)
    return cond


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

    def with_rules(self, rules: list[Rule]) -> RuleSet:
        return replace(self, rules=list(rules))

    def rules_for(self, user_attrs: dict | None, now: datetime) -> list[Rule]:
        attrs = dict(user_attrs or {})
        return [r for r in self.rules if r.active_at(now) and r.applies_to(attrs)]

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
        fields = Rule.__dataclass_fields__
        rules = [Rule(**{k: v for k, v in r.items() if k in fields}) for r in data.get("rules", [])]
        return cls(
            rule_set_id=data.get("rule_set_id", "default"),
            version=int(data.get("version", 0)),
            name=data.get("name", ""),
            rules=rules,
            exclude_purchased=bool(data.get("exclude_purchased", True)),
        )


# --- conditions on item attributes ---------------------------------------------------------------


def _listify(v) -> list[str]:
    if isinstance(v, str):
        return [s.strip() for s in v.split(",") if s.strip()]
    return [str(s) for s in v]


def matching_items(rule_or_condition: Rule | dict, attrs: pl.DataFrame, now: datetime) -> np.ndarray:
    """(N,) bool: which rows of ``attrs`` the rule's condition matches (an empty condition matches all)."""
    cond = rule_or_condition.condition if isinstance(rule_or_condition, Rule) else (rule_or_condition or {})
    n = attrs.height
    mask = np.ones(n, dtype=bool)
    cols = attrs.columns

    def col(name):
        return attrs.get_column(name) if name in cols else pl.Series(name, [None] * n)

    for key, value in cond.items():
        if value is None or value == "" or value == []:
            continue
        if key in ("item_id", "brand", "seller_id", "seller_tier"):
            m = col(key).cast(pl.Utf8).is_in(_listify(value))
        elif key == "category":
            cats = col("category").cast(pl.Utf8).fill_null("")
            m = pl.Series([False] * n)
            for prefix in _listify(value):
                m = m | (cats == prefix) | cats.str.starts_with(prefix + ".")
        elif key == "price_min":
            m = col("price").cast(pl.Float64) >= float(value)
        elif key == "price_max":
            m = col("price").cast(pl.Float64) <= float(value)
        elif key == "new_days":
            created = col("created_at")
            if created.dtype == pl.Utf8 or created.dtype == pl.Null:
                created = created.cast(pl.Utf8).str.to_datetime(strict=False)
            if getattr(created.dtype, "time_zone", None):
                created = created.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            m = created >= (_naive(now) - timedelta(days=float(value)))
        elif key == "promoted":
            m = col("promoted").cast(pl.Boolean).fill_null(False) == bool(value)
        else:
            raise InputError(
                f"unknown condition field {key!r}", fix=f"use one of {', '.join(CONDITION_KEYS)}"
            )
        mask &= m.fill_null(False).to_numpy().astype(bool)
    return mask


# --- validation ----------------------------------------------------------------------------------
def _num(v) -> float | None:
    try:
        return None if v is None or isinstance(v, bool) else float(v)
    except (TypeError, ValueError):
        return None


def _check_condition(tag: str, cond: dict, known: set[str] | None, errors: list[str]) -> None:
    for key in cond:
        if key not in CONDITION_KEYS:
            errors.append(f"{tag}: unknown condition field {key!r} (use {', '.join(CONDITION_KEYS)})")
    if known is not None and cond.get("item_id"):
        for item in _listify(cond["item_id"]):
            if item not in known:
                errors.append(f"{tag}: item {item!r} is not in the catalog")
    lo, hi = cond.get("price_min"), cond.get("price_max")
    for name, v in (("price min", lo), ("price max", hi), ("new days", cond.get("new_days"))):
        if v is not None and (_num(v) is None or _num(v) < 0):
            errors.append(f"{tag}: {name} {v!r} is not a number ≥ 0")
    if _num(lo) is not None and _num(hi) is not None and _num(lo) > _num(hi):
        errors.append(f"{tag}: price min {lo:g} > max {hi:g}")


def _in(
    tag: str, name: str, v, lo: float, hi: float, errors: list[str], lo_open=False, hi_open=False
) -> None:
    x = _num(v)
    ok = x is not None and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        errors.append(f"{tag}: {name} {v!r} must be a number in {rng}")


def validate(rule_set: RuleSet, known_items: set[str] | None = None, k_max: int = DEFAULT_K_MAX) -> list[str]:
    """Errors a person can act on, each naming the rule (1-based, with kind) and the field."""
    errors: list[str] = []
    seen: dict[str, int] = {}
    known = set(known_items) if known_items is not None else None
    for n, rule in enumerate(rule_set.rules, start=1):
        tag = f"rule {n} ({rule.kind})"
        p = rule.params
        if rule.rule_id in seen:
            errors.append(f"{tag}: id {rule.rule_id!r} is also used by rule {seen[rule.rule_id]}")
        seen.setdefault(rule.rule_id, n)
        if rule.kind not in KINDS:
            errors.append(f"rule {n}: unknown kind {rule.kind!r} — use one of {', '.join(KINDS)}")
            continue
        if rule.kind == "pin":
            item = p.get("item_id")
            if not item:
                errors.append(f"{tag}: no item to pin")
            elif known is not None and str(item) not in known:
                errors.append(f"{tag}: item {str(item)!r} is not in the catalog")
            slot = _num(p.get("slot"))
            if slot is None or slot != int(slot) or not 1 <= slot <= k_max:
                errors.append(f"{tag}: slot {p.get('slot')!r} is outside 1..{k_max}")
        else:
            _check_condition(tag, rule.condition, known, errors)
        if rule.kind == "block" and not rule.condition:
            errors.append(f"{tag}: blocks every item — give an item id or a condition")
        if rule.kind in ("boost", "bury"):
            f, d = p.get("factor"), p.get("delta")
            if f is None and d is None:
                errors.append(f"{tag}: give a factor (e.g. 1.3) or a delta")
            if f is not None:
                if rule.kind == "boost":
                    _in(tag, "factor", f, 1, 100, errors)
                else:
                    _in(tag, "factor", f, 0, 1, errors, lo_open=True)
            if d is not None and _num(d) is None:
                errors.append(f"{tag}: delta {d!r} is not a number")
        if rule.kind == "reserve":
            within = p.get("within", k_max)
            _in(tag, "within", within, 1, k_max, errors)
            _in(tag, "slots", p.get("slots"), 1, _num(within) or k_max, errors)
        if rule.kind == "cap":
            if p.get("attribute") not in CAP_ATTRIBUTES:
                errors.append(
                    f"{tag}: attribute {p.get('attribute')!r} — use one of {', '.join(CAP_ATTRIBUTES)}"
                )
            _in(tag, "max", p.get("max"), 1, k_max, errors)
            if p.get("top_k") is not None:
                _in(tag, "top_k", p.get("top_k"), 1, k_max, errors)
        if rule.kind == "diversity":
            method = p.get("method", "mmr")
            if method not in ("mmr", "dpp"):
                errors.append(f"{tag}: method {method!r} — use mmr or dpp")
            elif method == "mmr":
                _in(tag, "lambda", p.get("lambda", 0.7), 0, 1, errors)
            else:
                _in(tag, "theta", p.get("theta", 0.7), 0, 1, errors, hi_open=True)
            if p.get("calibration") is not None:
                _in(tag, "calibration", p.get("calibration"), 0, 1, errors)
        if rule.kind == "fairness":
            _in(tag, "p", p.get("p"), 0, 1, errors, lo_open=True, hi_open=True)
            _in(tag, "alpha", p.get("alpha", 0.1), 0, 0.5, errors, lo_open=True)
            if not rule.condition:
                errors.append(f"{tag}: no protected group — give a condition (e.g. seller_tier small)")
        try:
            scope_matches(rule.scope, {})
        except InputError as exc:
            errors.append(f"{tag}: scope — {exc}")
        if rule.starts_at and rule.ends_at and rule.starts_at >= rule.ends_at:
            errors.append(
                f"{tag}: starts_at {rule.starts_at:%Y-%m-%d %H:%M} is not before ends_at "
                f"{rule.ends_at:%Y-%m-%d %H:%M}"
            )
    return errors


__all__ = [
    "KINDS",
    "CONDITION_KEYS",
    "Rule",
    "RuleSet",
    "condition_text",
    "parse_condition",
    "parse_segment",
    "scope_matches",
    "matching_items",
    "validate",
]
