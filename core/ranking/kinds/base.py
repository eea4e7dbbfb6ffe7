"""What a rule kind is: typed parameters described as form fields, validation, a pipeline stage with its
``apply``, reason codes, an editor-table row codec and a sentence. One module per kind subclasses ``Kind``.

The fields are data (``Field``): core says what a parameter is (an item, a condition on items, a choice, a
number with its unit and range); the pages draw a widget for it, the table codec writes and reads it, and
validation checks it — all from the same description.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum, IntEnum
from typing import Any, ClassVar, Protocol

import numpy as np

from core.errors import InputError
from core.ranking.conditions import Condition
from core.ranking.limits import SLOT_MAX
from core.ranking.reasons import ReasonCode


class Stage(IntEnum):
    """The pipeline's stages, in order. Candidates (stock, purchases) is the pipeline's own first step."""

    CANDIDATES = 1
    EXCLUSIONS = 2  # which candidates may not be shown
    SCORES = 3  # relevance up or down
    RERANK = 4  # diversity, calibration, caps: the order of the whole list
    SLOT_SHARES = 5  # minimum shares of the top slots (fairness, reservations)
    PINS = 6  # items on fixed slots, last, so that they always hold


class Widget(Enum):
    """How a page lets a person enter a field."""

    ITEM = "item"  # one item, searched by title or id, or picked from a promotion
    CONDITION = (
        "condition"  # which items: items, categories, brands, sellers, seller tiers, price, new, promoted
    )
    CHOICE = "choice"  # one of ``options``
    NUMBER = "number"  # a number in a range
    INTEGER = "integer"  # a whole number in a range


REQUIRED = object()  # a field's default when a rule must give it


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    widget: Widget
    help: str = ""
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    default: Any = REQUIRED  # what a blank field means (``REQUIRED``: it may not be blank)
    options: tuple[str, ...] = ()
    when: tuple[str, str] | None = None  # only for rules whose field ``when[0]`` is ``when[1]``

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def range_text(self) -> str:
        if self.lo is None and self.hi is None:
            return ""
        lo, hi = "−∞" if self.lo is None else f"{self.lo:g}", "∞" if self.hi is None else f"{self.hi:g}"
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"

    def applies(self, values: dict) -> bool:
        """Whether the field means anything given the (typed) values of the fields before it."""
        return self.when is None or values.get(self.when[0]) == self.when[1]

    def coerce(self, v, where: str):
        """A raw value (JSON, a form, the table) → the typed value; an InputError says what is wrong."""
        if self.widget is Widget.CONDITION:
            return v if isinstance(v, Condition) else Condition.from_dict(v, f"{where}: {self.name}")
        if self.widget is Widget.ITEM:
            text = str(v).strip()
            if not text:
                raise InputError(f"{where}: no {self.label.lower()}")
            return text
        if self.widget is Widget.CHOICE:
            if str(v) not in self.options:
                raise InputError(f"{where}: {self.name} {v!r} — use {' or '.join(self.options)}")
            return str(v)
        return self._number(v, where)

    def _number(self, v, where: str):
        try:
            x = None if isinstance(v, bool) else float(v)
        except (TypeError, ValueError):
            x = None
        ok = x is not None and math.isfinite(x)
        if ok and self.lo is not None:
            ok = x > self.lo if self.lo_open else x >= self.lo
        if ok and self.hi is not None:
            ok = x < self.hi if self.hi_open else x <= self.hi
        whole = self.widget is Widget.INTEGER
        if not ok or (whole and x != int(x)):
            what = "a whole number" if whole else "a number"
            raise InputError(f"{where}: {self.name} {v!r} must be {what} in {self.range_text()}")
        return int(x) if whole else x


def unknown_items(where: str, condition: Condition | None, known_items: set[str] | None) -> list[str]:
    """A problem for each item a condition names that the catalog lacks (``known_items`` None: unchecked)."""
    missing_items = [] if condition is None else condition.unknown_items(known_items)
    return [f"{where}: item {i!r} is not in the catalog" for i in missing_items]


def slot_field(name: str = "slot", label: str = "Slot", help: str = "", default: Any = REQUIRED) -> Field:
    return Field(name, label, Widget.INTEGER, help, "slot", 1, SLOT_MAX, default=default)


def missing(v) -> bool:
    """Blank in any of its disguises: None, NaN, pandas' NaT, an empty or blank string."""
    if v is None:
        return True
    if isinstance(v, str):
        return not v.strip()
    try:
        return bool(v != v)  # NaN and NaT are not equal to themselves
    except (TypeError, ValueError):
        return False


class ActiveRule(Protocol):
    """What a kind sees of a rule: its id and its typed parameters (``core.ranking.rules.Rule``)."""

    rule_id: str
    spec: Any


@dataclass
class Needs:
    """Items the candidates must include whatever the model thinks: ``items`` always (a pin's item),
    ``pool`` (a (N,) bool mask over the catalog table) the best of them by model score, ``groups`` (rows of
    the catalog table, one array per group) the best few of every group by model score."""

    items: list[str]
    pool: np.ndarray | None = None
    groups: list[np.ndarray] | None = None


class Kind:
    """One rule kind. Subclasses set the class attributes and override what their kind does."""

    name: ClassVar[str]
    title: ClassVar[str]  # the form's heading: "Pin an item to a slot"
    summary: ClassVar[str]  # one line for the kind picker
    stage: ClassVar[Stage]
    order: ClassVar[int] = 0  # position within the stage
    Params: ClassVar[type]  # the typed parameter dataclass, its fields in the order of ``fields``
    fields: ClassVar[tuple[Field, ...]]
    Code: ClassVar[type[ReasonCode]]
    # the editor table: which field goes in the target, value and slot columns (the rest in options)
    table: ClassVar[dict[str, str]] = {}

    # ---------------------------------------------------------------- parameters

    def parse(self, raw: dict, where: str = "") -> Any:
        """The raw parameters (JSON, a form, the table) → ``Params``; an InputError names every problem."""
        problems, values = self._values(raw, where or f"{self.name} rule")
        if problems:
            raise InputError("; ".join(problems))
        return self.Params(*values.values())

    def problems(self, raw: dict, where: str, known_items: set[str] | None = None) -> list[str]:
        """What a person must fix in these parameters, each naming ``where`` and the field."""
        problems, values = self._values(raw, where)
        return problems + self.refine(self.Params(*values.values()), where, known_items)

    def _values(self, raw: dict, where: str) -> tuple[list[str], dict]:
        raw = dict(raw or {})
        problems, values = [], {}
        known = [f.name for f in self.fields]
        for key in raw:
            if key not in known:
                problems.append(
                    f"{where}: {self.name} has no parameter {key!r} (it takes {', '.join(known)})"
                )
        for f in self.fields:
            v = raw.get(f.name)
            if not f.applies(values):
                if not missing(v):
                    problems.append(f"{where}: {f.name} applies only when {f.when[0]} is {f.when[1]}")
                values[f.name] = None
            elif missing(v):
                if f.required:
                    problems.append(f"{where}: no {f.label.lower()} ({f.name}) given")
                values[f.name] = None if f.required else f.default
            else:
                try:
                    values[f.name] = f.coerce(v, where)
                except InputError as exc:
                    problems.append(str(exc))
                    values[f.name] = None
        return problems, values

    def refine(self, p: Any, where: str, known_items: set[str] | None) -> list[str]:
        """Checks across fields, or against the catalog (``known_items``: every item id, or None). A field
        whose own check failed is None here."""
        return []

    def values(self, p: Any) -> dict:
        """Typed parameters by field name (a dataclass field may differ from its name: ``lam`` for lambda)."""
        given = vars(p)
        return {f.name: given[attr.name] for f, attr in zip(self.fields, fields(p), strict=True)}

    # ---------------------------------------------------------------- the pipeline

    def needs(self, rules: list[ActiveRule], table, index: dict[str, int], now) -> Needs | None:
        """Items these rules need among the candidates (``table``: the catalog's ItemTable)."""
        return None

    def apply(self, state, rules: list[ActiveRule]) -> None:
        """Change the ranking state for these rules (all of this kind that apply to the shopper)."""
        raise NotImplementedError

    def check(self, state, rules: list[ActiveRule]) -> None:
        """After the final list is built: report what these rules could not keep."""

    # ---------------------------------------------------------------- words and tables

    def sentence(self, p: Any) -> str:
        """What the rule does, in words."""
        raise NotImplementedError

    def upgrade(self, rule) -> list:
        """A rule saved in an older form → the rules it means today (default: itself)."""
        return [rule]

    def to_row(self, p: Any) -> dict:
        """Typed parameters → the editor table's target, value, slot and options cells."""
        row = {"target": "", "value": None, "slot": None, "options": ""}
        rest = []
        values = self.values(p)
        for f in self.fields:
            v = values[f.name]
            column = next((c for c, name in self.table.items() if name == f.name), None)
            if column == "target":
                row["target"] = v.text() if isinstance(v, Condition) else ("" if v is None else str(v))
            elif column in ("value", "slot"):
                row[column] = v
            elif v is not None and v != f.default:
                rest.append(f"{f.name}={v:g}" if isinstance(v, float) else f"{f.name}={v}")
        row["options"] = ";".join(rest)
        return row

    def from_row(self, row: dict, where: str) -> dict:
        """The editor table's cells → raw parameters (a blank cell is the field's default)."""
        raw: dict = {}
        for column, name in self.table.items():
            v = row.get(column)
            if missing(v):
                continue
            f = self.field(name)
            raw[name] = Condition.parse(str(v), where).to_dict() if f.widget is Widget.CONDITION else v
            if f.widget is Widget.ITEM:
                raw[name] = str(v).strip().removeprefix("item_id=").strip()
        options = row.get("options")
        for part in ("" if missing(options) else str(options)).split(";"):
            key, eq, value = (s.strip() for s in part.partition("="))
            if key:
                raw[key] = value if eq else ""
        for f in self.fields:  # cells are text and floats: store numbers as numbers (bad ones as given)
            if f.widget in (Widget.NUMBER, Widget.INTEGER) and not missing(raw.get(f.name)):
                try:
                    raw[f.name] = f.coerce(raw[f.name], where)
                except InputError:
                    pass  # validation names it
        return raw

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)
