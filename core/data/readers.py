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
import re
from pathlib import Path

from core.data.formats import (
    CANONICAL,
    EVENT_TYPES,
    LINE_DELIM,
    REES46,
    REES46_EVENTS,
    REJECTS_SCAN,
    REJECTS_TABLE,
    REQUIRED,
    RETAILROCKET,
    RR_EVENTS,
    SEQUENCE_START,
    file_kind,
    first_lines,
    header_columns,
    ident,
    json_keys,
    lit,
    parquet_columns,
    require,
    sniff_delim,
)
from core.errors import InputError

# ---------------------------------------------------------------------------------------------- readers


def lines_reader(path: Path) -> str:
    """Every physical line as one VARCHAR ``line`` with its ordinal ``ord``; blank lines are NULL.
    Lines that are not valid UTF-8 are left out and recorded in ``REJECTS_TABLE`` with their number."""
    return (
        f"(SELECT ordinality AS ord, line FROM read_csv({lit(path)}, columns={{'line': 'VARCHAR'}}, "
        f"header=false, delim={lit(LINE_DELIM)}, quote='', escape='', auto_detect=false, "
        f"strict_mode=false, store_rejects=true, rejects_table={lit(REJECTS_TABLE)}, "
        f"rejects_scan={lit(REJECTS_SCAN)}) "
        "WITH ORDINALITY)"
    )


def _csv_fields(path: Path, delim: str, n: int, header: list[str]) -> str:
    """Relation (ord, raw, nf_reason, f) splitting each data line into its fields, quotes honoured."""
    d = re.escape(delim)
    rx = lit(f'{d}("(?:[^"]|"")*"|[^{d}"]*)')
    shown = ",".join(header)
    return f"""(SELECT ord, line AS raw, f,
              CASE WHEN q IS NOT NULL AND array_to_string(q, {lit(delim)}) <> line
                     THEN 'wrong quoting: a double quote is unbalanced or inside an unquoted field — '
                          || 'quote the whole field '
                          || 'and double any quote inside it'
                   WHEN len(f) <> {n}
                     THEN 'wrong column count: ' || len(f) || ' fields, expected {n} ({shown})'
                          || CASE WHEN len(f) > {n} THEN ' — quote fields that contain {delim}'
                                  ELSE ' — a field or a separator is missing' END
              END AS nf_reason
        FROM (SELECT ord, line, q,
                     CASE WHEN q IS NULL THEN string_split(line, {lit(delim)})
                          ELSE list_transform(q, lambda x: CASE WHEN starts_with(x, '"') AND length(x) > 1
                                                               THEN replace(x[2:-2], '""', '"') ELSE x END)
                     END AS f
              FROM (SELECT ord, line,
                           CASE WHEN contains(line, '"')
                                THEN regexp_extract_all({lit(delim)} || line, {rx}, 1) END AS q
                    FROM {lines_reader(path)} WHERE ord > 1 AND trim(coalesce(line, '')) <> '')))"""


def _csv_native(path: Path, delim: str, n: int) -> str:
    """DuckDB's parallel CSV parser (fields c1..cn as VARCHAR); rows it cannot parse go to its rejects
    table."""
    cols = "{" + ", ".join(f"'c{i + 1}': 'VARCHAR'" for i in range(n)) + "}"
    return (
        f"(SELECT ordinality + 1 AS ord, NULL::VARCHAR AS raw, NULL::VARCHAR AS nf_reason, * "
        f"FROM read_csv({lit(path)}, columns={cols}, header=true, delim={lit(delim)}, quote='\"', "
        f"escape='\"', auto_detect=false, store_rejects=true, rejects_table={lit(REJECTS_TABLE)}, "
        f"rejects_scan={lit(REJECTS_SCAN)}) WITH ORDINALITY)"
    )


def _field(src: dict[str, str], name: str | None) -> str:
    return src[name] if name and name in src else "NULL::VARCHAR"


# ---------------------------------------------------------------------------------------- classification


def ts_general(x: str) -> str:
    """VARCHAR → TIMESTAMP (UTC): ISO 8601 with or without offset, 'UTC' suffix, epoch s / ms."""
    return f"""(CASE WHEN regexp_full_match({x}, '[0-9]{{9,13}}')
                  THEN make_timestamp(CAST({x} AS BIGINT)
                                      * CASE WHEN length({x}) > 11 THEN 1000 ELSE 1000000 END)
                 WHEN regexp_matches({x}, '(Z|[+-][0-9]{{2}}:?[0-9]{{2}}|UTC)$')
                  THEN try_cast(try_cast({x} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)
                 ELSE try_cast({x} AS TIMESTAMP) END)"""


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


def classify(
    fields: str,
    *,
    ts_expr: str,
    events: dict[str, str],
    listed: str,
    raw_expr: str = "raw",
    passed: tuple[str, ...] = (),
) -> str:
    """Typed columns + reason from a relation of VARCHAR fields (``tsv, user_id, item_id, et, …``).
    Casts happen once (inner SELECT); the raw line (``raw_expr``, evaluated only for them) is kept only for
    rejected rows. ``passed``: columns of ``fields`` that ``raw_expr`` needs, dropped from the result."""
    dropped = ", ".join(("raw", "tsv", "et", "pr", "dw", "po", "ra", "dwell_d", "pos_d", "rating_d", *passed))
    return f"""
    SELECT * EXCLUDE ({dropped}),
           CAST(round(dwell_d) AS BIGINT) AS dwell_ms, CAST(pos_d AS INTEGER) AS position,
           CASE WHEN event_type = 'review' THEN rating_d END AS rating,
           CASE WHEN reason IS NOT NULL THEN {raw_expr} END AS raw
    FROM (SELECT * EXCLUDE (nf_reason), coalesce(nf_reason, CASE
             WHEN user_id IS NULL THEN 'missing user id — every event needs the shopper''s id'
             WHEN item_id IS NULL THEN 'missing item id — every event needs the product''s id'
             WHEN tsv IS NULL THEN 'missing timestamp — every event needs a date and time'
             WHEN ts IS NULL
               THEN 'unparseable timestamp ''' || tsv || ''' — use a date-time like 2024-05-01 13:45:00'
             WHEN event_type IS NULL
               THEN 'unknown event type ''' || coalesce(et, '') || ''' — event_type must be one of {listed}'
             WHEN pr IS NOT NULL AND price IS NULL
               THEN 'non-numeric price ''' || pr || ''' — write prices as plain numbers like 19.99'
             WHEN price < 0 THEN 'negative price ' || pr || ' — prices must be 0 or more'
             WHEN dw IS NOT NULL AND coalesce(dwell_d < 0, true)
               THEN 'dwell_ms ''' || dw || ''' is not a number of milliseconds ≥ 0'
             WHEN po IS NOT NULL AND coalesce(pos_d < 0 OR pos_d <> round(pos_d), true)
               THEN 'position ''' || po || ''' is not a whole number ≥ 0'
             WHEN ra IS NOT NULL AND rating_d IS NULL THEN 'rating ''' || ra || ''' is not a number'
           END) AS reason
          FROM (SELECT *, {ts_expr} AS ts, {_event_map(events)} AS event_type,
                       try_cast(pr AS DOUBLE) AS price, try_cast(dw AS DOUBLE) AS dwell_d,
                       try_cast(po AS DOUBLE) AS pos_d, try_cast(ra AS DOUBLE) AS rating_d
                FROM {fields}))"""


def _fields_select(
    fields_rel: str,
    src: dict[str, str],
    names: dict[str, str | None],
    *,
    source: str,
    k: str = "0",
    extra_reason: str = "nf_reason",
    passed: tuple[str, ...] = (),
) -> str:
    """Name the VARCHAR fields: tsv, user_id, item_id, et, session_id, dw, po, page, pr, ra, source, category,
    brand; ``names`` maps each to a source column name (or None); ``passed`` columns go through as they are."""

    def f(key):
        return _field(src, names.get(key))

    return f"""(SELECT ord, {k} AS k, raw, {extra_reason} AS nf_reason, {f("tsv")} AS tsv,
                {f("user_id")} AS user_id,
                {f("item_id")} AS item_id, {f("et")} AS et, {f("session_id")} AS session_id, {f("dw")} AS dw,
                {f("po")} AS po, {f("page")} AS page, {f("pr")} AS pr, {f("ra")} AS ra,
                coalesce({f("source")}, {lit(source)}) AS source, {f("category")} AS category,
                {f("brand")} AS brand{"".join(", " + c for c in passed)}
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
    """(canonical key → source column, required source columns, timestamp SQL on ``tsv``, event-name map,
    the event names listed in messages) for a columnar format."""
    if fmt == "rees46":
        ts_expr = f"coalesce(try_strptime(tsv, '%Y-%m-%d %H:%M:%S UTC'), {ts_general('tsv')})"
        listed = ", ".join(REES46_EVENTS) + " (REES46 event names)"
        return REES46_NAMES, REES46, ts_expr, REES46_EVENTS, listed
    if fmt == "retailrocket":
        ts_expr = (
            "CASE WHEN regexp_full_match(tsv, '[0-9]{1,16}') THEN make_timestamp(CAST(tsv AS BIGINT) * 1000) "
            "END"
        )
        listed = ", ".join(RR_EVENTS) + " (RetailRocket event names)"
        return RR_NAMES, RETAILROCKET[:4], ts_expr, RR_EVENTS, listed
    mapping = {k: v.lower() for k, v in (mapping or {}).items()}
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
    if fmt not in ("native", "rees46", "retailrocket") or file_kind(path) != "text":
        return {}
    line = first_lines(path, 1)[0]
    header = set(header_columns(line, sniff_delim(line)))
    names = _format_names(path, fmt, mapping)[0]
    constants = {col: "NULL" for key, col in OPTIONAL_COLUMNS.items() if names.get(key) not in header}
    if names.get("source") not in header:
        constants["source"] = lit(source or fmt)
    return constants


def event_sql(con, path: Path, fmt: str, mapping: dict | None, source: str | None, fast: bool = False) -> str:
    """SELECT of the file's classified events. ``ord`` is the physical line (subject to skipped invalid-UTF-8
    lines), the Parquet row, or, for CSV with ``fast`` (DuckDB's own parallel CSV parser), reader row + 1 —
    a line number only if the caller verifies that every line became one row."""
    kind = file_kind(path)
    if kind == "empty":
        raise InputError("the file is empty", file=str(path), fix="export the log again; it has no rows")
    if fmt in ("sequence", "pairs"):
        return _token_sql(path, fmt, source)
    names, expected, ts_expr, events, listed = _format_names(path, fmt, mapping)
    label = source or fmt
    if kind == "parquet":
        cols = parquet_columns(con, path)
        lower = {c.lower(): c for c in cols}
        require(path, [c for c in expected if c not in lower], expected, bool(mapping))
        src = {c: f"nullif(trim(CAST({ident(orig)} AS VARCHAR)), '')" for c, orig in lower.items()}
        raw = "concat_ws(',', " + ", ".join(f"coalesce(CAST({ident(c)} AS VARCHAR), '')" for c in cols) + ")"
        rel = (
            f"(SELECT file_row_number + 1 AS ord, {raw} AS raw, NULL::VARCHAR AS nf_reason, * "
            f"FROM read_parquet({lit(path)}, file_row_number=true))"
        )
        fields = _fields_select(rel, src, names, source=label)
    elif kind == "jsonl":
        keys = json_keys(path)
        lower = {k.lower(): k for k in keys}
        require(path, [c for c in expected if c not in lower], expected, bool(mapping))
        src = {
            c: f"nullif(trim(json_extract_string(jl, {lit('$.' + json.dumps(k))})), '')"
            for c, k in lower.items()
        }
        rel = f"""(SELECT ord, line AS raw, CASE WHEN ok THEN line END AS jl,
                    CASE WHEN NOT ok THEN 'not a valid JSON object — each line must be one {{…}} record' END
                      AS nf_reason
                  FROM (SELECT ord, line,
                              coalesce(starts_with(ltrim(line), '{{') AND json_valid(line), false) AS ok
                        FROM {lines_reader(path)} WHERE trim(coalesce(line, '')) <> ''))"""
        fields = _fields_select(rel, src, names, source=label)
    else:
        line = first_lines(path, 1)[0]
        delim = sniff_delim(line)
        header = header_columns(line, delim)
        require(path, [c for c in expected if c not in header], expected, bool(mapping))
        trim = "trim" if fmt == "native" else ""  # exports of known formats carry no padding: save the work
        if fast:  # DuckDB's CSV parser already reads an empty or quoted-empty field as NULL
            src = {c: f"nullif(trim(c{i + 1}), '')" if trim else f"c{i + 1}" for i, c in enumerate(header)}
            passed = tuple(f"c{i + 1}" for i in range(len(header)))
            fields = _fields_select(
                _csv_native(path, delim, len(header)), src, names, source=label, passed=passed
            )
            # a rejected row's line rebuilt from its fields: the same text unless the line had quotes
            raw_expr = f"concat_ws({lit(delim)}, " + ", ".join(f"coalesce({c}, '')" for c in passed) + ")"
            return classify(
                fields, ts_expr=ts_expr, events=events, listed=listed, raw_expr=raw_expr, passed=passed
            )
        src = {c: f"nullif({trim}(f[{i + 1}]), '')" for i, c in enumerate(header)}
        fields = _fields_select(_csv_fields(path, delim, len(header), header), src, names, source=label)
    return classify(fields, ts_expr=ts_expr, events=events, listed=listed)


def _token_sql(path: Path, fmt: str, source: str | None) -> str:
    """Sequence files (``user item item …``, one line per user) and ``user item`` pairs: purchases with
    synthetic timestamps that keep each user's order."""
    label = lit(source or fmt)
    toks = f"""(SELECT ord, line AS raw, string_split_regex(trim(line), '\\s+') AS tok
               FROM {lines_reader(path)} WHERE trim(coalesce(line, '')) <> '')"""
    if fmt == "sequence":
        body = f"""SELECT ord, k, raw, tok[1] AS user_id, tok[k + 1] AS item_id,
                          TIMESTAMP '{SEQUENCE_START}' + to_seconds(CAST(k AS BIGINT)) AS ts,
                          CASE WHEN len(tok) < 2
                               THEN 'a sequence line needs a user id and at least one item: '
                               || 'user item item …' END AS reason
                   FROM (SELECT *, unnest(CASE WHEN len(tok) < 2 THEN [0] ELSE range(1, len(tok)) END) AS k
                         FROM {toks})"""
    else:
        body = f"""SELECT ord, 0 AS k, raw, tok[1] AS user_id, tok[2] AS item_id,
                          TIMESTAMP '{SEQUENCE_START}' + to_seconds(CAST(ord AS BIGINT)) AS ts,
                          CASE WHEN len(tok) <> 2 THEN 'a pairs line must be exactly two fields: user item'
                          END AS reason
                   FROM {toks}"""
    return f"""SELECT ord, k, raw, ts, user_id, item_id, 'purchase' AS event_type,
                      NULL::VARCHAR AS session_id,
                      NULL::BIGINT AS dwell_ms, NULL::INTEGER AS position, NULL::VARCHAR AS page,
                      NULL::DOUBLE AS price, NULL::DOUBLE AS rating, {label} AS source,
                      NULL::VARCHAR AS category, NULL::VARCHAR AS brand, reason
               FROM ({body})"""
