"""Log formats: detection from the header, and the SQL that maps each onto canonical events.

Each reader yields a relation with the canonical columns as VARCHAR plus ``rn`` (the row's
order in the file); ``core.data.ingest`` validates, deduplicates and loads it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from core.errors import InputError

CANONICAL = ["ts", "user_id", "item_id", "event_type", "session_id", "dwell_ms", "position", "page", "price",
             "rating", "source"]
REQUIRED = ["ts", "user_id", "item_id", "event_type"]
REES46 = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id",
          "user_session"]
RETAILROCKET = ["timestamp", "visitorid", "event", "itemid", "transactionid"]
EVENT_TYPES = ["view", "click", "add_to_cart", "remove_from_cart", "purchase", "review"]
FORMATS = ["native", "rees46", "retailrocket", "sequence", "pairs"]
REES46_EVENTS = {"view": "view", "cart": "add_to_cart", "remove_from_cart": "remove_from_cart", "purchase": "purchase"}
RR_EVENTS = {"view": "view", "addtocart": "add_to_cart", "transaction": "purchase"}


def _open_text(path: Path):
    return gzip.open(path, "rt", errors="replace") if path.suffix == ".gz" else path.open("r", errors="replace")


def file_kind(path: Path) -> str:
    """'parquet', 'jsonl' or 'text' from the first bytes."""
    with path.open("rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return "parquet"
    with _open_text(path) as f:
        for line in f:
            if line.strip():
                return "jsonl" if line.lstrip().startswith("{") else "text"
    return "empty"


def first_lines(path: Path, n: int = 20) -> list[str]:
    out = []
    with _open_text(path) as f:
        for line in f:
            if line.strip():
                out.append(line.rstrip("\r\n"))
            if len(out) >= n:
                break
    return out


def header_columns(line: str) -> list[str]:
    return [c.strip().strip('"').strip().lower() for c in line.split(",")]


def detect_format(path: str | Path, columns: list[str] | None = None) -> str:
    """The event-log format of a file, from its header (or first lines for headerless sequence files)."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "empty":
        raise InputError("the file is empty", file=str(path), fix="export the log again; it has no rows")
    if kind in ("parquet", "jsonl"):
        cols = set(columns or [])
        if set(REES46) <= cols:
            return "rees46"
        if set(RETAILROCKET[:4]) <= cols:
            return "retailrocket"
        return "native"
    lines = first_lines(path)
    cols = header_columns(lines[0])
    if set(REES46) <= set(cols):
        return "rees46"
    if set(RETAILROCKET[:4]) <= set(cols):
        return "retailrocket"
    if "," in lines[0]:
        return "native"
    tokens = [line.split() for line in lines]
    if sum(len(t) >= 2 for t in tokens) > 0.5 * len(tokens):  # tolerate a few malformed lines
        return "pairs" if all(len(t) == 2 for t in tokens) and len(lines) > 1 and _pairs_repeat(tokens) else "sequence"
    raise InputError(
        "unknown format: the first line is neither a CSV header nor 'user item item …'",
        file=str(path), line=1,
        fix="give a CSV with columns ts,user_id,item_id,event_type (or a REES46/RetailRocket export), "
            "or pass --format",
    )


def _pairs_repeat(tokens: list[list[str]]) -> bool:
    """'user item' pairs repeat users over lines; a sequence file has one line per user."""
    users = [t[0] for t in tokens if t]
    return len(set(users)) < len(users)


def csv_relation(path: Path, fmt: str, mapping: dict | None, cols: list[str] | None = None) -> tuple[str, list[str]]:
    """SQL template (``{reader}`` = the source relation with ``rn``) selecting canonical VARCHAR
    columns + rn; ``cols`` are the source's column names (default: the CSV header)."""
    cols = cols if cols is not None else header_columns(first_lines(path, 1)[0])
    if fmt == "rees46":
        missing = [c for c in REES46 if c not in cols]
        _require(path, missing, REES46)
        sql = f"""
            SELECT rn,
                   replace(event_time, ' UTC', '') AS ts, user_id, product_id AS item_id,
                   CASE event_type {_case(REES46_EVENTS)} ELSE event_type END AS event_type,
                   user_session AS session_id, NULL AS dwell_ms, NULL AS position, NULL AS page,
                   price, NULL AS rating, 'rees46' AS source,
                   category_code AS category, brand, category_id
            FROM {{reader}}"""
        return sql, cols
    if fmt == "retailrocket":
        _require(path, [c for c in RETAILROCKET[:4] if c not in cols], RETAILROCKET)
        sql = f"""
            SELECT rn,
                   CASE WHEN try_cast("timestamp" AS BIGINT) IS NULL THEN "timestamp"
                        ELSE strftime(make_timestamp(try_cast("timestamp" AS BIGINT) * 1000), '%Y-%m-%d %H:%M:%S.%g')
                   END AS ts,
                   visitorid AS user_id, itemid AS item_id,
                   CASE event {_case(RR_EVENTS)} ELSE event END AS event_type,
                   NULL AS session_id, NULL AS dwell_ms, NULL AS position, NULL AS page, NULL AS price,
                   NULL AS rating, 'retailrocket' AS source
            FROM {{reader}}"""
        return sql, cols
    # native, with an optional canonical → source column mapping
    mapping = {k: v.lower() for k, v in (mapping or {}).items()}
    source = {c: mapping.get(c, c) for c in CANONICAL}
    _require(path, [c for c in REQUIRED if source[c] not in cols], REQUIRED, mapped=bool(mapping))
    select = ", ".join(
        (f'"{source[c]}" AS {c}' if source[c] in cols else f"NULL AS {c}") for c in CANONICAL
    )
    return f"SELECT rn, {select} FROM {{reader}}", cols


def _case(mapping: dict[str, str]) -> str:
    return " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in mapping.items())


def _require(path: Path, missing: list[str], expected: list[str], mapped: bool = False) -> None:
    if missing:
        raise InputError(
            f"missing required column(s) {', '.join(missing)}; expected a header with {', '.join(expected)}",
            file=str(path), line=1,
            fix="rename the columns" + ("" if mapped else " or map them (--map ts=event_time …)"),
        )
