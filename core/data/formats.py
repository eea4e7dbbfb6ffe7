"""Log formats: names, constants and detection from the header (or the first lines of headerless
sequence files). The SQL that reads each format is in ``core.data.readers``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from core.data.columns import normalise, shown
from core.data.sniff import is_token, read_head
from core.errors import InputError
from core.sql import ident, lit
from models.base import EVENT_TYPES as EVENT_CODES

CANONICAL = [
    "ts",
    "user_id",
    "item_id",
    "event_type",
    "session_id",
    "dwell_ms",
    "position",
    "page",
    "price",
    "rating",
    "source",
]
REQUIRED = ["ts", "user_id", "item_id", "event_type"]
REES46 = [
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
]
RETAILROCKET = ["timestamp", "visitorid", "event", "itemid", "transactionid"]
EVENT_TYPES = sorted(EVENT_CODES, key=EVENT_CODES.get)  # the names a log may use: models.base's vocabulary
FORMATS = ["native", "rees46", "retailrocket", "sequence", "pairs"]
REES46_EVENTS = {
    "view": "view",
    "cart": "add_to_cart",
    "remove_from_cart": "remove_from_cart",
    "purchase": "purchase",
}
RR_EVENTS = {"view": "view", "addtocart": "add_to_cart", "transaction": "purchase"}
SEQUENCE_START = "2000-01-01 00:00:00"
LINE_DELIM = "\x01\x02\x03\x04"  # never in a text log: each physical line is one value
REJECTS_TABLE, REJECTS_SCAN = "hs_line_rejects", "hs_line_scans"


__all__ = ["ident", "lit"]  # re-exported: the one quoting helper lives in core.sql


def file_kind(path: Path) -> str:
    """'parquet', 'jsonl' or 'text' (``core.data.sniff`` refuses anything else, and empty files)."""
    return read_head(path).kind


def first_lines(path: Path, n: int = 20) -> list[str]:
    """The first ``n`` (at most 20) non-blank lines (BOM and line ends stripped)."""
    return list(read_head(path).lines[:n])


def header_columns(line: str, delim: str = ",", path: Path | None = None) -> list[str]:
    """The header's column names as written (a BOM dropped); ``core.data.columns`` maps them onto ours."""
    try:
        return next(csv.reader([line.lstrip("\ufeff")], delimiter=delim))
    except csv.Error as exc:
        raise InputError(
            f"the header cannot be read as CSV ({exc})",
            file=str(path) if path else None,
            line=1,
            fix="the first line must be the column names, separated by commas",
        ) from exc


def sniff_delim(line: str) -> str:
    return max([",", "\t", ";", "|"], key=line.count) if any(d in line for d in ",\t;|") else ","


def parquet_columns(con, path: Path) -> list[str]:
    return [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()]


def json_keys(path: Path, n: int = 20) -> list[str]:
    keys: list[str] = []
    for line in first_lines(path, n):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to be a record: that row's reject
            continue
        if isinstance(row, dict):
            keys += [k for k in row if k not in keys]
    return keys


def columns_of(path: Path) -> tuple[str, list[str]]:
    """(file kind, column names lower-cased); text files: the header's columns."""
    kind = file_kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as exc:  # pyarrow's errors for a damaged file are many kinds
            raise InputError(
                f"is not a readable Parquet file ({exc})", file=str(path), fix="export the file again"
            ) from exc
        return kind, [normalise(c) for c in names]
    if kind == "jsonl":
        return kind, [normalise(k) for k in json_keys(path)]
    line = first_lines(path, 1)[0]
    return kind, [normalise(c) for c in header_columns(line, sniff_delim(line), path)]


def detect_format(path: str | Path) -> str:
    """The event-log format of a file, from its header (or first lines for headerless sequence files)."""
    path = Path(path)
    kind, cols = columns_of(path)
    if set(REES46) <= set(cols):
        return "rees46"
    if set(RETAILROCKET[:4]) <= set(cols):
        return "retailrocket"
    if kind in ("parquet", "jsonl"):
        return "native"
    lines = first_lines(path)
    if len(cols) >= 2 and not all(is_token(c) for c in cols):
        return "native"
    if set(REQUIRED) & set(cols):
        return "native"
    tokens = [line.split() for line in lines]
    if all(is_token(t) for line in tokens for t in line) and sum(len(t) >= 2 for t in tokens) > 0.5 * len(
        tokens
    ):
        return "pairs" if all(len(t) == 2 for t in tokens) and _users_repeat(tokens) else "sequence"
    raise InputError(
        "unknown format: the first line is neither a CSV header nor 'user item item …'",
        file=str(path),
        line=1,
        fix="give a CSV with columns ts,user_id,item_id,event_type (or a REES46/RetailRocket export), "
        "a sequence file (user item item …), or pass the format",
    )


def _users_repeat(tokens: list[list[str]]) -> bool:
    """'user item' pairs repeat users over lines; a sequence file has one line per user."""
    users = [t[0] for t in tokens if t]
    return len(users) > 1 and len(set(users)) < len(users)


def require(path: Path, missing: list[str], expected: list[str], mapped: bool = False) -> None:
    if missing:
        looks = looks_like(path)
        raise InputError(
            f"missing required column(s) {', '.join(missing)}; expected a header with {', '.join(expected)}"
            + (f" — the file looks like {looks}" if looks else ""),
            file=str(path),
            line=1,
            fix="rename the columns" + ("" if mapped else " or map them (--map ts=event_time …)"),
        )


DESCRIBED = {
    "native": "a native event log (ts, user_id, item_id, event_type)",
    "rees46": "a REES46 event log (use --format rees46)",
    "retailrocket": "a RetailRocket event log (use --format retailrocket)",
    "sequence": "a sequence file, user item item … (use --format sequence)",
    "pairs": "a pairs file, user item (use --format pairs)",
}


def looks_like(path: Path) -> str | None:
    """What the file looks like, for a refusal's message: an event log format, a catalog, or None."""
    try:
        kind, cols = columns_of(path)
        if is_event_log(cols):
            return DESCRIBED[detect_format(path)]
        if {"item_id", "user_id", "seller_id", "discount"} & set(cols):
            return "a catalog file (load it with ingest-catalog / Catalog on the Data page)"
        if kind in ("parquet", "jsonl"):
            return f"a {'Parquet' if kind == 'parquet' else 'JSON Lines'} file without the columns we need"
        fmt = detect_format(path)
        if fmt in ("sequence", "pairs"):
            return DESCRIBED[fmt]
        return "a CSV file with the columns " + ", ".join(shown(c, 20) for c in cols[:8])
    except InputError:
        return None


def is_event_log(cols: list[str]) -> bool:
    """A header only an event log has: native, REES46 or RetailRocket."""
    c = set(cols)
    return set(REQUIRED) <= c or set(REES46) <= c or set(RETAILROCKET[:4]) <= c
