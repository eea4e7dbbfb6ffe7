"""Conditions on item attributes: which items a block, boost, bury, reserve or fairness rule is about.

A condition is typed data (``Condition``); its fields combine with AND, the values of one field with OR.
Three forms, one meaning: the JSON of a saved rule set (``{"category": ["beauty"], "promoted": true}``),
the editor table's text (``category=beauty;promoted``) and the form's pickers (``CONDITION_FIELDS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from core import category_paths
from core.errors import InputError

LISTS = ("item_id", "category", "brand", "seller_id", "seller_tier")
NUMBERS = ("price_min", "price_max", "new_days")
CONDITION_KEYS = (*LISTS, *NUMBERS, "promoted")
TEXT_FIX = "write field=value pairs joined by ';', e.g. category=beauty.skin;price_max=20;promoted"


def naive_utc(t: datetime) -> datetime:
    """A time as naive UTC (the store's convention); a naive time is taken as UTC already."""
    if t.tzinfo is None:
        return t
    return t.replace(tzinfo=None) - (t.utcoffset() or timedelta())


def _listify(v) -> tuple[str, ...]:
    if isinstance(v, str):
        return tuple(s.strip() for s in v.split(",") if s.strip())
    return tuple(str(s).strip() for s in v if str(s).strip())


def _number(key: str, v, where: str) -> float:
    try:
        x = None if isinstance(v, bool) else float(v)
    except (TypeError, ValueError):
        x = None
    if x is None or x != x or x < 0:
        raise InputError(f"{where}: {key.replace('_', ' ')} {v!r} is not a number ≥ 0")
    return x


@dataclass(frozen=True)
class Condition:
    item_id: tuple[str, ...] = ()
    category: tuple[str, ...] = ()  # category path prefixes (a prefix covers its sub-paths)
    brand: tuple[str, ...] = ()
    seller_id: tuple[str, ...] = ()
    seller_tier: tuple[str, ...] = ()
    price_min: float | None = None  # currency units, inclusive
    price_max: float | None = None
    new_days: float | None = None  # created within the last n days of the shop clock
    promoted: bool | None = None  # under an active promotion (True) or not (False)

    @property
    def empty(self) -> bool:
        return self == Condition()

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "condition") -> Condition:
        """The JSON form → a Condition; an InputError names ``where`` and the field."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise InputError(f"{where}: a condition is a set of field=value pairs, not {d!r}", fix=TEXT_FIX)
        values: dict = {}
        for key, v in d.items():
            if key not in CONDITION_KEYS:
                raise InputError(
                    f"{where}: unknown condition field {key!r} (use {', '.join(CONDITION_KEYS)})"
                )
            if v is None or v == "" or v == [] or v == ():
                continue
            if key in LISTS:
                values[key] = _listify(v)
            elif key in NUMBERS:
                values[key] = _number(key, v, where)
            else:
                values[key] = bool(v)
        lo, hi = values.get("price_min"), values.get("price_max")
        if lo is not None and hi is not None and lo > hi:
            raise InputError(f"{where}: price min {lo:g} > max {hi:g}")
        return cls(**values)

    def to_dict(self) -> dict:
        """The JSON form: only the fields that are set, lists as lists."""
        out: dict = {}
        for name, v in vars(self).items():
            if v is None or v == ():
                continue
            out[name] = list(v) if isinstance(v, tuple) else v
        return out

    def text(self) -> str:
        """The editor table's form, read back by ``parse``: ``category=a.b;brand=X,Y;promoted``."""
        parts = []
        for key, v in self.to_dict().items():
            if key == "promoted":
                parts.append("promoted" if v else "promoted=false")
            elif isinstance(v, list):
                parts.append(f"{key}={','.join(v)}")
            else:
                parts.append(f"{key}={v:g}")
        return ";".join(parts)

    @classmethod
    def parse(cls, text: str | None, where: str = "condition") -> Condition:
        """The table form → a Condition; an InputError names ``where`` and the field."""
        d: dict = {}
        for part in (text or "").split(";"):
            key, eq, value = (s.strip() for s in part.strip().partition("="))
            if not key:
                continue
            if key not in CONDITION_KEYS:
                raise InputError(
                    f"{where}: unknown condition field {key!r} (use {', '.join(CONDITION_KEYS)})",
                    fix=TEXT_FIX,
                )
            if key == "promoted":
                if eq and value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise InputError(f"{where}, field promoted: {value!r} is not true/false", fix=TEXT_FIX)
                d[key] = not eq or value.lower() in ("true", "1", "yes")
            elif not value:
                raise InputError(f"{where}, field {key}: no value", fix=TEXT_FIX)
            else:
                d[key] = value
        return cls.from_dict(d, where)

    def describe(self) -> str:
        """In words: 'items in beauty.skin, brand X, priced up to 20, promoted' ('every item' when empty)."""
        given = vars(self)
        bits = [
            f"{word} {', '.join(given[key])}"
            for key, word in (("category", "in"), ("brand", "brand"), ("seller_id", "seller"))
            if given[key]
        ]
        if self.seller_tier:
            bits.append(f"from {' or '.join(self.seller_tier)} sellers")
        if self.price_min is not None:
            bits.append(f"priced from {self.price_min:g}")
        if self.price_max is not None:
            bits.append(f"priced up to {self.price_max:g}")
        if self.new_days is not None:
            bits.append(f"new in the last {self.new_days:g} days")
        if self.promoted is not None:
            bits.append("promoted" if self.promoted else "not promoted")
        head = f"items {', '.join(self.item_id)}" if self.item_id else "items"
        if not bits:
            return head if self.item_id else "every item"
        return f"{head}{' that are' if self.item_id else ''} {', '.join(bits)}"

    def unknown_items(self, known: set[str] | None) -> list[str]:
        return [] if known is None else [i for i in self.item_id if i not in known]

    def matches(self, attrs: pl.DataFrame, now: datetime) -> np.ndarray:
        """(N,) bool: which rows of ``attrs`` match (an empty condition matches every row)."""
        n = attrs.height
        mask = np.ones(n, dtype=bool)
        col = lambda name: attrs.get_column(name) if name in attrs.columns else pl.Series(name, [None] * n)
        for key, v in self.to_dict().items():
            if key in ("item_id", "brand", "seller_id", "seller_tier"):
                m = col(key).cast(pl.Utf8).is_in(v)
            elif key == "category":
                m = category_paths.under_series(col("category"), v)
            elif key == "price_min":
                m = col("price").cast(pl.Float64) >= v
            elif key == "price_max":
                m = col("price").cast(pl.Float64) <= v
            elif key == "new_days":
                m = _created(col("created_at")) >= naive_utc(now) - timedelta(days=v)
            else:
                m = col("promoted").cast(pl.Boolean).fill_null(False) == v
            mask &= m.fill_null(False).to_numpy().astype(bool)
        return mask


def _created(created: pl.Series) -> pl.Series:
    """Creation times as naive UTC datetimes (text is parsed; an unreadable one is null)."""
    if created.dtype in (pl.Utf8, pl.Null):
        created = created.cast(pl.Utf8).str.to_datetime(strict=False)
    if isinstance(created.dtype, pl.Datetime) and created.dtype.time_zone:
        created = created.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return created
