"""The SQL that reads each log format and classifies its rows into typed canonical events.

Text files (CSV, JSON Lines, sequence files) are read by DuckDB as one VARCHAR value per physical
line (``lines_reader``), numbered in file order, then split and classified in SQL: line numbers are
exact, blank lines keep their number, and a line that is not valid UTF-8 lands in DuckDB's rejects
table with its number. Clean CSV can instead go through DuckDB's parallel CSV parser
(``event_sql(..., fast=True)``); the caller checks that every line became one row. Parquet rows are
numbered by their row in the file.

``event_sql`` returns one SELECT yielding, per event: ``ord`` (line or row ordinal from the reader),
``k`` (position inside a sequence line, else 0), ``raw`` (rejected rows only; with ``fast``, the line
rebuilt from its fields, which differs from the line only if it had quotes), the typed canonical
columns, ``category`` / ``brand`` (REES46) and ``reason`` (NULL for a good row, else what is wrong
and how to fix it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.data.columns import ColumnMap, map_columns, normalise
from core.data.formats import (
    CANONICAL,
    EVENT_TYPES,
    REES46,
    REES46_EVENTS,
    REQUIRED,
    RETAILROCKET,
    RR_EVENTS,
    SEQUENCE_START,
    header_columns,
    parquet_columns,
    require,
    sniff_delim,
)
from core.data.lines import csv_fields, csv_native, json_keys_in, lines_reader
from core.data.sniff import read_head
from core.errors import InputError
from core.sql import lit

MAX_ID = 256  # characters in a user, item or session id
CONTROL = "'[\\x00-\\x1f\\x7f]'"  # a control character inside an id (NUL, tab, line break, escape…)
CONTROL_NOT_SPACE = "'[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]'"  # the same, tab and line ends aside
FIRST_TS, END_TS = "1970-01-01", "2101-01-01"  # timestamps outside [1970, 2100] are rejected


@dataclass
class EventSQL:
    """The SELECT of a file's classified events, and how its columns were mapped (for the report)."""

    sql: str
    columns: ColumnMap


# ---------------------------------------------------------------------------------------- classification

PLAIN_TS = r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?"


def ts_general(x: str) -> str:
    """VARCHAR → TIMESTAMP (UTC): epoch seconds or milliseconds; ISO 8601 without a zone (taken as UTC); with
    any offset (``Z``, ``+02``, ``+0200``, ``+02:00``) or zone name (``UTC``, ``Europe/Paris``), converted to
    UTC. A zone DuckDB does not know gives NULL (rejected), never the local time with the zone dropped —
    which is what a plain TIMESTAMP cast does with anything after the time."""
    return f"""(CASE WHEN regexp_full_match({x}, '[0-9]{{9,13}}')
                  THEN make_timestamp(CAST({x} AS BIGINT)
                                      * CASE WHEN length({x}) > 11 THEN 1000 ELSE 1000000 END)
                 WHEN regexp_full_match({x}, {lit(PLAIN_TS)}) THEN try_cast({x} AS TIMESTAMP)
                 ELSE try_cast(try_cast({x} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP) END)"""


def _event_map(names: dict[str, str]) -> str:
    """Source event name → canonical, case-insensitive. Exact spellings are matched first: lowering every
    row's name costs more than the rest of the mapping."""
    whens = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in names.items())
    return f"CASE et {whens} ELSE CASE lower(et) {whens} END END"


ALIASES = {t: t for t in EVENT_TYPES} | {
    "cart": "add_to_cart",
    "addtocart": "add_to_cart",
    "add-to-cart": "add_to_cart",
    "transaction": "purchase",
    "buy": "purchase",
    "order": "purchase",
    "rating": "review",
}
IDS = {"user_id": "user id", "item_id": "item id", "session_id": "session id"}


def id_reasons(columns: dict[str, str], controls: bool) -> str:
    """One WHEN clause for ids (column → what messages call it): too long, or (``controls``) holding a control
    character. The fast path leaves ``controls`` to a check on the distinct ids (``core.data.stage``).
    One clause, not one per check: every WHEN of the CASE is evaluated on every good row."""
    longest = "greatest(" + ", ".join(f"coalesce(strlen({c}), 0)" for c in columns) + f") > {MAX_ID}"
    whens = [
        f"WHEN strlen({c}) > {MAX_ID} THEN '{label} is ' || length({c}) || ' characters long — ids have at "
        f"most {MAX_ID}'"
        for c, label in columns.items()
    ]
    if controls:
        longest += "".join(f" OR regexp_matches({c}, {CONTROL})" for c in columns)
        whens += [
            f"WHEN regexp_matches({c}, {CONTROL}) THEN '{label} contains a control character (tab, NUL, line "
            "break…) — remove it from the id'"
            for c, label in columns.items()
        ]
    return f"WHEN {longest} THEN CASE {' '.join(whens)} END"


# the checks of rare faults share one WHEN each (see id_reasons): the timestamp, then the price
NUMBER_REASONS = """
             WHEN pr IS NOT NULL AND (price IS NULL OR NOT isfinite(price) OR price < 0) THEN CASE
               WHEN price IS NULL
               THEN 'non-numeric price ''' || pr || ''' — write prices as plain numbers like 19.99'
               WHEN NOT isfinite(price)
               THEN 'price ''' || pr || ''' is not a finite number — write prices as plain numbers like 19.99'
               ELSE 'negative price ' || pr || ' — prices must be 0 or more' END
             WHEN dw IS NOT NULL AND coalesce(NOT isfinite(dwell_d) OR dwell_d < 0 OR dwell_d > 1e12, true)
               THEN 'dwell_ms ''' || dw || ''' is not a number of milliseconds ≥ 0'
             WHEN po IS NOT NULL
                  AND coalesce(NOT isfinite(pos_d) OR pos_d < 0 OR pos_d > 2147483647 OR pos_d <> round(pos_d),
                               true)
               THEN 'position ''' || po || ''' is not a whole number ≥ 0'
             WHEN ra IS NOT NULL AND coalesce(NOT isfinite(rating_d), true)
               THEN 'rating ''' || ra || ''' is not a finite number'"""
TS_REASONS = f"""
             WHEN tsv IS NULL THEN 'missing timestamp — every event needs a date and time'
             WHEN ts IS NULL OR ts < TIMESTAMP '{FIRST_TS}' OR ts >= TIMESTAMP '{END_TS}' THEN CASE
               WHEN ts IS NULL
               THEN 'unparseable timestamp ''' || tsv || ''' — use a date-time like 2024-05-01 13:45:00 '
                    || '(an offset like +02:00 or a zone like Europe/Paris may follow)'
               ELSE 'timestamp ''' || tsv || ''' is outside the years 1970–2100 — check the year '
                    || '(and, for epoch numbers, seconds or milliseconds)' END"""


def classify(
    fields: str,
    *,
    ts_expr: str,
    events: dict[str, str],
    listed: str,
    raw_expr: str = "raw",
    passed: tuple[str, ...] = (),
    controls: bool = True,
) -> str:
    """Typed columns + reason from a relation of VARCHAR fields (``tsv, user_id, item_id, et, …``).
    Casts happen once (inner SELECT); the raw line (``raw_expr``, evaluated only for them) is kept only for
    rejected rows. ``passed``: columns of ``fields`` that ``raw_expr`` needs, dropped from the result."""
    dropped = ", ".join(("raw", "tsv", "et", "pr", "dw", "po", "ra", "dwell_d", "pos_d", "rating_d", *passed))
    return f"""
    SELECT * EXCLUDE ({dropped}),
           try_cast(round(dwell_d) AS BIGINT) AS dwell_ms, try_cast(pos_d AS INTEGER) AS position,
           CASE WHEN event_type = 'review' THEN rating_d END AS rating,
           CASE WHEN reason IS NOT NULL THEN {raw_expr} END AS raw
    FROM (SELECT * EXCLUDE (nf_reason), coalesce(nf_reason, CASE
             WHEN user_id IS NULL THEN 'missing user id — every event needs the shopper''s id'
             WHEN item_id IS NULL THEN 'missing item id — every event needs the product''s id'
             {id_reasons(IDS, controls)}{TS_REASONS}
             WHEN event_type IS NULL
               THEN 'unknown event type ''' || coalesce(et, '') || ''' — event_type must be one of {listed}'
             {NUMBER_REASONS}
           END) AS reason
          FROM (SELECT *, {ts_expr} AS ts, {_event_map(events)} AS event_type,
                       try_cast(pr AS DOUBLE) AS price, try_cast(dw AS DOUBLE) AS dwell_d,
                       try_cast(po AS DOUBLE) AS pos_d, try_cast(ra AS DOUBLE) AS rating_d
                FROM {fields}))"""


FIELD_KEYS = (
    "tsv",
    "user_id",
    "item_id",
    "et",
    "session_id",
    "dw",
    "po",
    "page",
    "pr",
    "ra",
    "source",
    "category",
    "brand",
)


def _fields_select(
    fields_rel: str,
    src: dict[str, str],
    names: dict[str, str | None],
    *,
    source: str,
    k: str = "0",
    passed: tuple[str, ...] = (),
) -> str:
    """Name the VARCHAR fields (``FIELD_KEYS``). ``names`` maps each key to the known column it is read from,
    ``src`` a known column to its SQL (absent: NULL); ``passed`` columns go through as they are."""

    def f(key):
        name = names.get(key)
        return src[name] if name and name in src else "NULL::VARCHAR"

    named = {key: f(key) for key in FIELD_KEYS}
    named["source"] = f"coalesce({named['source']}, {lit(source)})"
    columns = ", ".join(f"{sql} AS {key}" for key, sql in named.items())
    return f"""(SELECT ord, {k} AS k, raw, nf_reason, {columns}{"".join(", " + c for c in passed)}
         FROM {fields_rel})"""


NATIVE_NAMES = {
    "tsv": "ts",
    "user_id": "user_id",
    "item_id": "item_id",
    "et": "event_type",
    "session_id": "session_id",
    "dw": "dwell_ms",
    "po": "position",
    "page": "page",
    "pr": "price",
    "ra": "rating",
    "source": "source",
}
REES46_NAMES = {
    "tsv": "event_time",
    "user_id": "user_id",
    "item_id": "product_id",
    "et": "event_type",
    "session_id": "user_session",
    "pr": "price",
    "category": "category_code",
    "brand": "brand",
}
RR_NAMES = {"tsv": "timestamp", "user_id": "visitorid", "item_id": "itemid", "et": "event"}


def _format_names(path: Path, fmt: str, mapping: dict | None):
    """(key → the file's column it is read from (lower case), required columns, timestamp SQL on ``tsv``,
    event-name map, the event names listed in messages) for a columnar format."""
    if fmt == "rees46":
        ts_expr = f"coalesce(try_strptime(tsv, '%Y-%m-%d %H:%M:%S UTC'), {ts_general('tsv')})"
        listed = ", ".join(REES46_EVENTS) + " (REES46 event names)"
        return REES46_NAMES, REES46, ts_expr, REES46_EVENTS, listed
    if fmt == "retailrocket":  # epoch milliseconds: 13 digits reach the year 2286, more would overflow
        ts_expr = (
            "CASE WHEN regexp_full_match(tsv, '[0-9]{1,13}') THEN make_timestamp(CAST(tsv AS BIGINT) * 1000) "
            "END"
        )
        listed = ", ".join(RR_EVENTS) + " (RetailRocket event names)"
        return RR_NAMES, RETAILROCKET[:4], ts_expr, RR_EVENTS, listed
    mapping = {k: str(v).strip().lower() for k, v in (mapping or {}).items()}
    bad = [k for k in mapping if k not in CANONICAL]
    if bad:
        raise InputError(
            f"cannot map {', '.join(bad)}: not a canonical column",
            file=str(path),
            fix="map onto " + ", ".join(CANONICAL),
        )
    names = {key: mapping.get(col, col) for key, col in NATIVE_NAMES.items()}
    expected = [mapping.get(c, c) for c in REQUIRED]
    return names, expected, ts_general("tsv"), ALIASES, ", ".join(EVENT_TYPES)


OPTIONAL_COLUMNS = {"dw": "dwell_ms", "po": "position", "page": "page", "ra": "rating"}


def constant_columns(path: Path, fmt: str, mapping: dict | None, source: str | None) -> dict[str, str]:
    """Event columns a CSV log's header does not carry, so the same on every row: column → SQL value.
    A bulk load leaves them out of its staging table and writes the value (materialising millions of
    NULLs costs about 0.4 s per 5M rows)."""
    head = read_head(path)
    if fmt not in ("native", "rees46", "retailrocket") or head.kind != "text":
        return {}
    line = head.lines[0]
    header = {normalise(h) for h in header_columns(line, sniff_delim(line), path)}
    names = _format_names(path, fmt, mapping)[0]
    constants = {col: "NULL" for key, col in OPTIONAL_COLUMNS.items() if names.get(key) not in header}
    if names.get("source") not in header:
        constants["source"] = lit(source or fmt)
    return constants


def event_sql(
    con, path: Path, fmt: str, mapping: dict | None, source: str | None, fast: bool = False
) -> EventSQL:
    """SELECT of the file's classified events. ``ord`` is the physical line (subject to skipped invalid-UTF-8
    lines), the Parquet row, or, for CSV with ``fast`` (DuckDB's own parallel CSV parser, header on line 1
    only), reader row + 1 — a line number only if the caller verifies that every line became one row. With
    ``fast`` the control-character check of ids is the caller's (on the distinct ids)."""
    if fmt in ("sequence", "pairs"):
        return EventSQL(_token_sql(path, fmt, source), ColumnMap())
    head = read_head(path)
    names, expected, ts_expr, events, listed = _format_names(path, fmt, mapping)
    wanted = {n for n in names.values() if n} | set(expected)
    kinds = dict(ts_expr=ts_expr, events=events, listed=listed)
    if head.kind == "parquet":
        cmap = map_columns(parquet_columns(con, path), wanted, file=str(path))
    elif head.kind == "jsonl":
        cmap = map_columns(json_keys_in(con, path), wanted, file=str(path), json_keys=True)
    else:
        delim = sniff_delim(head.lines[0])
        cmap = map_columns(header_columns(head.lines[0], delim, path), wanted, file=str(path))
    require(path, [c for c in expected if c not in cmap], expected, bool(mapping))
    if head.kind == "parquet":
        return EventSQL(classify(_parquet_fields(path, cmap, names, source or fmt), **kinds), cmap)
    if head.kind == "jsonl":
        return EventSQL(classify(_json_fields(path, cmap, names, source or fmt), **kinds), cmap)
    trim = "trim" if fmt == "native" else ""  # exports of known formats carry no padding: save the work
    if fast:  # DuckDB's CSV parser already reads an empty or quoted-empty field as NULL
        src = {c: f"nullif(trim(c{i + 1}), '')" if trim else f"c{i + 1}" for c, i in cmap.positions.items()}
        passed = tuple(f"c{i + 1}" for i in range(cmap.count))
        rel = csv_native(path, delim, cmap.count)
        fields = _fields_select(rel, src, names, source=source or fmt, passed=passed)
        # a rejected row's line rebuilt from its fields: the same text unless the line had quotes
        raw_expr = f"concat_ws({lit(delim)}, " + ", ".join(f"coalesce({c}, '')" for c in passed) + ")"
        sql = classify(fields, raw_expr=raw_expr, passed=passed, controls=False, **kinds)
        return EventSQL(sql, cmap)
    src = {c: f"nullif({trim}(f[{i + 1}]), '')" for c, i in cmap.positions.items()}
    rel = csv_fields(con, path, delim, cmap.labels(), head.first_line_no)
    return EventSQL(classify(_fields_select(rel, src, names, source=source or fmt), **kinds), cmap)


def _parquet_fields(path: Path, cmap: ColumnMap, names: dict, label: str) -> str:
    """Parquet columns read by position (``#i``), never by the file's names; raw: every column, in order."""
    every = ", ".join(f"coalesce(CAST(#{i + 1} AS VARCHAR), '')" for i in range(cmap.count))
    picked = "".join(f", #{i + 1} AS p{i}" for i in sorted(cmap.positions.values()))
    rel = (
        f"(SELECT file_row_number + 1 AS ord, concat_ws(',', {every}) AS raw, NULL::VARCHAR AS nf_reason"
        f"{picked} FROM read_parquet({lit(path)}, file_row_number=true))"
    )
    src = {c: f"nullif(trim(CAST(p{i} AS VARCHAR)), '')" for c, i in cmap.positions.items()}
    return _fields_select(rel, src, names, source=label)


def _json_fields(path: Path, cmap: ColumnMap, names: dict, label: str) -> str:
    """JSON Lines: each known key extracted by a path of its own spelling (letters, digits, _ only)."""
    src = {
        c: f"nullif(trim(json_extract_string(jl, {lit('$.' + json.dumps(cmap.spelled[c]))})), '')"
        for c in cmap.positions
    }
    rel = f"""(SELECT ord, line AS raw, CASE WHEN ok THEN line END AS jl,
                CASE WHEN NOT ok THEN 'not a valid JSON object — each line must be one {{…}} record' END
                  AS nf_reason
              FROM (SELECT ord, line,
                          coalesce(starts_with(ltrim(line), '{{') AND json_valid(line), false) AS ok
                    FROM {lines_reader(path)} WHERE trim(coalesce(line, '')) <> ''))"""
    return _fields_select(rel, src, names, source=label)


def _token_sql(path: Path, fmt: str, source: str | None) -> str:
    """Sequence files (``user item item …``, one line per user) and ``user item`` pairs: purchases with
    synthetic timestamps that keep each user's order."""
    label = lit(source or fmt)
    toks = f"""(SELECT ord, line AS raw, string_split_regex(trim(line), '\\s+') AS tok,
                      CASE WHEN regexp_matches(line, {CONTROL_NOT_SPACE})
                             THEN 'a control character (NUL, escape…) inside an id — remove it'
                           WHEN strlen(line) > {MAX_ID}
                                AND list_max(list_transform(string_split_regex(trim(line), '\\s+'),
                                                            lambda x: strlen(x))) > {MAX_ID}
                             THEN 'an id longer than {MAX_ID} characters — ids have at most {MAX_ID}' END
                        AS id_reason
               FROM {lines_reader(path)} WHERE trim(coalesce(line, '')) <> '')"""
    if fmt == "sequence":
        body = f"""SELECT ord, k, raw, tok[1] AS user_id, tok[k + 1] AS item_id,
                          TIMESTAMP '{SEQUENCE_START}' + to_seconds(CAST(k AS BIGINT)) AS ts,
                          CASE WHEN len(tok) < 2
                               THEN 'a sequence line needs a user id and at least one item: '
                               || 'user item item …' ELSE id_reason END AS reason
                   FROM (SELECT *, unnest(CASE WHEN len(tok) < 2 THEN [0] ELSE range(1, len(tok)) END) AS k
                         FROM {toks})"""
    else:
        body = f"""SELECT ord, 0 AS k, raw, tok[1] AS user_id, tok[2] AS item_id,
                          TIMESTAMP '{SEQUENCE_START}' + to_seconds(CAST(ord AS BIGINT)) AS ts,
                          CASE WHEN len(tok) <> 2 THEN 'a pairs line must be exactly two fields: user item'
                          ELSE id_reason END AS reason
                   FROM {toks}"""
    return f"""SELECT ord, k, raw, ts, user_id, item_id, 'purchase' AS event_type,
                      NULL::VARCHAR AS session_id,
                      NULL::BIGINT AS dwell_ms, NULL::INTEGER AS position, NULL::VARCHAR AS page,
                      NULL::DOUBLE AS price, NULL::DOUBLE AS rating, {label} AS source,
                      NULL::VARCHAR AS category, NULL::VARCHAR AS brand, reason
               FROM ({body})"""
