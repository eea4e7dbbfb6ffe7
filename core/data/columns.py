"""A file's column names mapped onto our known names, in Python, so that no name from a file reaches SQL.

A CSV header and a Parquet schema give columns by position: the SQL reads field ``i`` (``f[i]``, ``c{i}``,
``#i``) and names it with our own name. JSON Lines give keys, which the SQL must spell out in a JSON path:
only a key that is a known name in another letter case (``User_ID``) is used, so the path holds nothing
but letters, digits and underscores. Every other column is ignored and reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.errors import InputError

MAX_COLUMNS = 1000  # a log or catalog with more columns than this is not one we know
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_]+")


@dataclass
class ColumnMap:
    """Known name → position in the file (0-based) and, for JSON keys, the file's own spelling."""

    positions: dict[str, int] = field(default_factory=dict)
    spelled: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    count: int = 0  # how many columns the file has

    def __contains__(self, name: str) -> bool:
        return name in self.positions

    def labels(self) -> list[str]:
        """What messages call each column, in file order: our name, or "column i" (never the file's name)."""
        by_position = {i: name for name, i in self.positions.items()}
        return [by_position.get(i, f"column {i + 1}") for i in range(self.count)]

    def ignored_note(self) -> str | None:
        """'ignored columns: a, b' for the ingest's message, or None."""
        if not self.ignored:
            return None
        shown = ", ".join(self.ignored[:10]) + (
            f" and {len(self.ignored) - 10} more" if len(self.ignored) > 10 else ""
        )
        return f"ignored columns (not ones we know): {shown}"


def normalise(name: str) -> str:
    """How a header name is compared with ours: BOM and surrounding whitespace dropped, lower case."""
    return str(name).lstrip("\ufeff").strip().lower()


def shown(name: str, limit: int = 40) -> str:
    """A column name fit for a message: control characters escaped, long names shortened."""
    text = repr(str(name))[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def map_columns(names: list[str], known: Iterable[str], *, file: str, json_keys: bool = False) -> ColumnMap:
    """Map ``names`` (the file's columns, in order) onto ``known`` (ours, lower case). Two columns that both
    mean one known name are refused, since which one to load would be a guess. With ``json_keys`` a key is
    used only when it is spelled with letters, digits and underscores (it goes into a JSON path)."""
    if len(names) > MAX_COLUMNS:
        raise InputError(
            f"has {len(names):,} columns; a log or catalog has at most {MAX_COLUMNS:,}",
            file=file,
            line=1,
            fix="check that this is the right file and that its separator is a comma, tab, ; or |",
        )
    wanted = set(known)
    result = ColumnMap(count=len(names))
    for position, name in enumerate(names):
        key = normalise(name)
        usable = key in wanted and (not json_keys or _PLAIN_KEY.fullmatch(str(name)))
        if not usable:
            result.ignored.append(shown(name))
            continue
        if key in result.positions:
            raise InputError(
                f"column {key} appears twice (columns {result.positions[key] + 1} and {position + 1})",
                file=file,
                line=1,
                fix="keep one of them",
            )
        result.positions[key] = position
        result.spelled[key] = str(name)
    return result
