"""Log formats: names, constants and detection from the header (or the first lines of headerless
sequence files). The SQL that reads each format is in ``core.data.readers``.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

from core.errors import InputError

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
EVENT_TYPES = ["view", "click", "add_to_cart", "remove_from_cart", "purchase", "review"]
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


def lit(text) -> str:
    """A SQL string literal (for the few places that take no parameters: names in generated SQL)."""
    return "'" + str(text).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace", newline="")


def file_kind(path: Path) -> str:
    """'parquet', 'jsonl', 'text' or 'empty', from the first bytes."""
    with path.open("rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return "parquet"
    for line in first_lines(path, 1):
        return "jsonl" if line.lstrip().startswith("{") else "text"
    return "empty"


def first_lines(path: Path, n: int = 20) -> list[str]:
    """The first ``n`` non-blank lines (BOM and line ends stripped)."""
    out = []
    with _open_text(path) as f:
        for line in f:
            line = line.lstrip("\ufeff").rstrip("\r\n")
            if line.strip():
                out.append(line)
            if len(out) >= n:
                break
    return out


def header_columns(line: str, delim: str = ",") -> list[str]:
    return [c.strip().lower() for c in next(csv.reader([line.lstrip("\ufeff")], delimiter=delim))]


def sniff_delim(line: str) -> str:
    return max([",", "\t", ";", "|"], key=line.count) if any(d in line for d in ",\t;|") else ","


def parquet_columns(con, path: Path) -> list[str]:
    return [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()]


def json_keys(path: Path, n: int = 100) -> list[str]:
    keys: list[str] = []
    for line in first_lines(path, n):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            keys += [k for k in row if k not in keys]
    return keys


def columns_of(path: Path) -> tuple[str, list[str]]:
    """(file kind, column names lower-cased); text files: the header's columns."""
    kind = file_kind(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return kind, [c.lower() for c in pq.read_schema(path).names]
    if kind == "jsonl":
        return kind, [k.lower() for k in json_keys(path)]
    if kind == "text":
        line = first_lines(path, 1)[0]
        return kind, header_columns(line, sniff_delim(line))
    return kind, []


def detect_format(path: str | Path) -> str:
    """The event-log format of a file, from its header (or first lines for headerless sequence files)."""
    path = Path(path)
    kind, cols = columns_of(path)
    if kind == "empty":
        raise InputError("the file is empty", file=str(path), fix="export the log again; it has no rows")
    if set(REES46) <= set(cols):
        return "rees46"
    if set(RETAILROCKET[:4]) <= set(cols):
        return "retailrocket"
    if kind in ("parquet", "jsonl"):
        return "native"
    lines = first_lines(path)
    if len(cols) >= 2 and not all(_is_token(c) for c in cols):
        return "native"
    if set(REQUIRED) & set(cols):
        return "native"
    tokens = [line.split() for line in lines]
    if all(_is_token(t) for line in tokens for t in line) and sum(len(t) >= 2 for t in tokens) > 0.5 * len(
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


def _is_token(text: str) -> bool:
    return bool(re.fullmatch(r"[\w.:@-]+", text))


def _users_repeat(tokens: list[list[str]]) -> bool:
    """'user item' pairs repeat users over lines; a sequence file has one line per user."""
    users = [t[0] for t in tokens if t]
    return len(users) > 1 and len(set(users)) < len(users)


def require(path: Path, missing: list[str], expected: list[str], mapped: bool = False) -> None:
    if missing:
        raise InputError(
            f"missing required column(s) {', '.join(missing)}; expected a header with {', '.join(expected)}",
            file=str(path),
            line=1,
            fix="rename the columns" + ("" if mapped else " or map them (--map ts=event_time …)"),
        )
