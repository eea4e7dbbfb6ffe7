"""Load event logs and catalogs into the store, in one transaction each, streaming through DuckDB.

Every row is either loaded, counted as a duplicate or rejected with its line number, raw
text and a reason a person can act on: ``rows_read = loaded + rejected + duplicates``.
A whole-file problem raises ``InputError`` and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl

from core import store
from core.data import formats
from core.data.formats import EVENT_TYPES, REES46_EVENTS, RR_EVENTS, detect_format, file_kind, first_lines
from core.errors import InputError

Progress = Callable[[float, str], None]
US = "\x1f"  # a delimiter that does not occur in text logs: read each physical line as one value
SEQUENCE_START = "2000-01-01 00:00:00"


@dataclass
class IngestResult:
    ingest_id: int
    file: str
    format: str
    rows_read: int
    loaded: int
    rejected: int
    duplicates: int
    seconds: float
    status: str = "done"
    kind: str = "events"

    def summary(self) -> str:
        return (
            f"{Path(self.file).name} ({self.format} {self.kind}): read {self.rows_read:,} rows → loaded "
            f"{self.loaded:,}, rejected {self.rejected:,}, duplicates {self.duplicates:,} "
            f"in {self.seconds:.1f} s (ingest #{self.ingest_id})"
        )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError("no such file", file=str(path), fix="check the path")
    if not path.is_file():
        raise InputError("is a folder, not a file", file=str(path), fix="point at one log file")
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror})", file=str(path), fix="check its permissions") from exc
    if path.stat().st_size == 0:
        raise InputError("the file is empty", file=str(path), fix="export the log again; it has no rows")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _lit(text: str) -> str:
    """A SQL string literal (file paths in table functions, which take no parameters)."""
    return "'" + str(text).replace("'", "''") + "'"


def _lines_reader(path: Path) -> str:
    """Every physical line as one VARCHAR value, blank lines as NULL, in file order."""
    return (f"read_csv({_lit(path)}, columns={{'l': 'VARCHAR'}}, header=false, delim='{US}', quote='', "
            f"escape='', auto_detect=false, strict_mode=false)")


def _stage(con, path: Path, fmt: str, mapping: dict | None) -> str:
    """Create temp table ``staged`` (rn + canonical VARCHAR columns) and ``struct_rejects``.
    Returns how line numbers relate to rn: 'csv' (mapped lazily), 'line' (rn is the line), 'row'."""
    con.execute("CREATE OR REPLACE TEMP TABLE struct_rejects (line BIGINT, raw VARCHAR, reason VARCHAR)")
    kind = file_kind(path)
    if fmt in ("sequence", "pairs"):
        _stage_tokens(con, path, fmt)
        return "line"
    if kind == "parquet":
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(path)})").fetchall()]
        lower = {c.lower(): c for c in cols}
        body = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c.lower()}"' for c in cols)
        reader = f"(SELECT file_row_number + 1 AS rn, {body} FROM read_parquet({_lit(path)}, file_row_number=true))"
        sql, _ = _select_for(path, fmt, mapping, list(lower))
        con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS {sql.format(reader=reader)}")
        return "row"
    if kind == "jsonl":
        keys: list[str] = []
        for line in first_lines(path, 50):
            try:
                keys += [k for k in json.loads(line) if k not in keys]
            except (json.JSONDecodeError, TypeError):
                continue
        con.execute(f"CREATE OR REPLACE TEMP TABLE lines AS SELECT row_number() OVER () AS rn, l "
                    f"FROM {_lines_reader(path)}")
        con.execute("""INSERT INTO struct_rejects SELECT rn, l, 'not a valid JSON object — fix the line or remove it'
                       FROM lines WHERE l IS NOT NULL AND NOT coalesce(json_valid(l), false)""")
        body = ", ".join(f"json_extract_string(l, {_lit('$.' + json.dumps(k))}) AS \"{k.lower()}\"" for k in keys)
        reader = f"(SELECT rn, {body} FROM lines WHERE l IS NOT NULL AND json_valid(l))"
        sql, _ = _select_for(path, fmt, mapping, [k.lower() for k in keys])
        con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS {sql.format(reader=reader)}")
        return "line"
    # CSV through DuckDB's own reader; malformed lines land in its rejects table with their line
    con.execute("DROP TABLE IF EXISTS hs_rej; DROP TABLE IF EXISTS hs_scan")
    reader = (f"(SELECT row_number() OVER () AS rn, * FROM read_csv({_lit(path)}, all_varchar=true, header=true, "
              "delim=',', quote='\"', escape='\"', store_rejects=true, rejects_table='hs_rej', "
              "rejects_scan='hs_scan', rejects_limit=0, normalize_names=false))")
    sql, _ = _select_for(path, fmt, mapping, None)
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS {sql.format(reader=reader)}")
    con.execute(
        """INSERT INTO struct_rejects
           SELECT line, trim(any_value(csv_line), chr(10) || chr(13)),
                  CASE any_value(error_type)
                      WHEN 'INVALID ENCODING' THEN 'bad encoding: the line is not valid UTF-8 — re-export as UTF-8'
                      WHEN 'MISSING COLUMNS' THEN 'wrong column count: ' || any_value(error_message)
                          || ' — a field or a comma is missing'
                      WHEN 'TOO MANY COLUMNS' THEN 'wrong column count: ' || any_value(error_message)
                          || ' — quote fields that contain commas'
                      ELSE any_value(error_type) || ': ' || any_value(error_message) END
           FROM hs_rej GROUP BY line"""
    )
    return "csv"


def _select_for(path: Path, fmt: str, mapping: dict | None, cols: list[str] | None) -> tuple[str, list[str]]:
    return formats.csv_relation(path, fmt, mapping, cols)


def _stage_tokens(con, path: Path, fmt: str) -> None:
    con.execute(f"""CREATE OR REPLACE TEMP TABLE lines AS
                    SELECT row_number() OVER () AS rn, string_split_regex(trim(l), '\\s+') AS tok, l
                    FROM {_lines_reader(path)}""")
    if fmt == "sequence":
        con.execute("""INSERT INTO struct_rejects SELECT rn, l,
                         'a sequence line needs a user id and at least one item: user item item …'
                       FROM lines WHERE l IS NOT NULL AND trim(l) <> '' AND len(tok) < 2""")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE staged AS
            SELECT rn * 100000 + i AS rn,
                   strftime(TIMESTAMP '{SEQUENCE_START}' + to_hours(CAST(i AS BIGINT)), '%Y-%m-%d %H:%M:%S') AS ts,
                   tok[1] AS user_id, tok[i + 1] AS item_id, 'purchase' AS event_type,
                   NULL AS session_id, NULL AS dwell_ms, NULL AS position, NULL AS page, NULL AS price,
                   NULL AS rating, 'sequence' AS source
            FROM (SELECT rn, tok, unnest(range(1, len(tok))) AS i FROM lines WHERE len(tok) >= 2)""")
    else:
        con.execute("""INSERT INTO struct_rejects SELECT rn, l,
                         'a pairs line must be exactly: user item'
                       FROM lines WHERE l IS NOT NULL AND trim(l) <> '' AND len(tok) <> 2""")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE staged AS
            SELECT rn,
                   strftime(TIMESTAMP '{SEQUENCE_START}' + to_seconds(CAST(rn AS BIGINT)), '%Y-%m-%d %H:%M:%S') AS ts,
                   tok[1] AS user_id, tok[2] AS item_id, 'purchase' AS event_type,
                   NULL AS session_id, NULL AS dwell_ms, NULL AS position, NULL AS page, NULL AS price,
                   NULL AS rating, 'pairs' AS source
            FROM lines WHERE len(tok) = 2""")


def _allowed_types(fmt: str) -> list[str]:
    return {"rees46": list(REES46_EVENTS), "retailrocket": list(RR_EVENTS)}.get(fmt, EVENT_TYPES)


_TS = """coalesce(
    try_cast(ts AS TIMESTAMP),
    try_cast(try_cast(ts AS TIMESTAMPTZ) AS TIMESTAMP),
    CASE WHEN regexp_full_match(trim(ts), '[0-9]{9,13}')
         THEN make_timestamp(CAST(trim(ts) AS BIGINT) * CASE WHEN length(trim(ts)) > 11 THEN 1000 ELSE 1000000 END)
    END)"""


def _validate(con, fmt: str) -> None:
    allowed = _allowed_types(fmt)
    canon = "', '".join(EVENT_TYPES)
    listed = ", ".join(allowed)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE checked AS
        SELECT *, {_TS} AS ts_parsed,
            CASE
              WHEN user_id IS NULL OR trim(user_id) = '' THEN 'missing user id — every event needs the shopper''s id'
              WHEN item_id IS NULL OR trim(item_id) = '' THEN 'missing item id — every event needs the product''s id'
              WHEN ts IS NULL OR trim(ts) = '' THEN 'missing timestamp'
              WHEN {_TS} IS NULL THEN 'unparseable timestamp ''' || ts || ''' — expected e.g. 2019-10-01 02:57:43'
              WHEN event_type IS NULL OR event_type NOT IN ('{canon}')
                THEN 'unknown event type ''' || coalesce(event_type, '') || ''' — expected one of {listed}'
              WHEN price IS NOT NULL AND trim(price) <> '' AND try_cast(price AS DOUBLE) IS NULL
                THEN 'non-numeric price ''' || price || ''''
              WHEN try_cast(price AS DOUBLE) < 0 THEN 'negative price ' || price || ' — prices must be ≥ 0'
              WHEN dwell_ms IS NOT NULL AND trim(dwell_ms) <> ''
                   AND coalesce(try_cast(dwell_ms AS DOUBLE) < 0, true)
                THEN 'dwell_ms ''' || dwell_ms || ''' is not a non-negative number'
              WHEN position IS NOT NULL AND trim(position) <> '' AND try_cast(position AS INTEGER) IS NULL
                THEN 'position ''' || position || ''' is not a whole number'
              WHEN rating IS NOT NULL AND trim(rating) <> ''
                   AND coalesce(try_cast(rating AS DOUBLE) NOT BETWEEN 1 AND 5, true)
                THEN 'rating ''' || rating || ''' must be a number from 1 to 5'
            END AS reason
        FROM staged""")


def _line_numbers(con, path: Path, mode: str) -> None:
    """Table ``rn_line(rn, line, raw)`` for the rows that failed validation."""
    if mode in ("line", "row"):
        raw = "l" if mode == "line" else "NULL"
        join = "LEFT JOIN lines ON lines.rn = c.rn" if mode == "line" else ""
        if mode == "line" and not _has_table(con, "lines"):
            join = ""
            raw = "NULL"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE rn_line AS
                        SELECT c.rn, CASE WHEN c.rn >= 100000 AND c.source = 'sequence' THEN c.rn // 100000
                                          ELSE c.rn END AS line, {raw} AS raw
                        FROM checked c {join} WHERE c.reason IS NOT NULL""")
        if mode == "line":
            con.execute("""UPDATE rn_line SET raw = (SELECT l FROM lines WHERE lines.rn = rn_line.line)
                           WHERE raw IS NULL""")
        return
    # CSV: row k of the parsed data is the k-th non-blank line after the header that the reader did not reject
    con.execute(f"""CREATE OR REPLACE TEMP TABLE rn_line AS
        WITH phys AS (SELECT row_number() OVER () AS line, l FROM {_lines_reader(path)}),
             data AS (SELECT line, l, row_number() OVER (ORDER BY line) AS rn FROM phys
                      WHERE line > 1 AND l IS NOT NULL AND line NOT IN (SELECT line FROM struct_rejects))
        SELECT d.rn, d.line, d.l AS raw FROM data d WHERE d.rn IN (SELECT rn FROM checked WHERE reason IS NOT NULL)""")


def _has_table(con, name: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary", [name]
    ).fetchall()[0][0])


def ingest_events(path, fmt: str | None = None, *, db_path=None, mapping: dict | None = None,
                  progress: Progress | None = None, source: str | None = None) -> IngestResult:
    """Load one event log (see module docstring). ``fmt`` None = detect from the header."""
    path = Path(path)
    started = time.perf_counter()
    report = progress or (lambda f, m="": None)
    _check_file(path)
    if fmt is not None and fmt not in formats.FORMATS:
        raise InputError(f"unknown format '{fmt}'", file=str(path), fix="use one of " + ", ".join(formats.FORMATS))
    report(0.02, "detecting format")
    if fmt is None:
        cols = None
        if file_kind(path) == "parquet":
            import pyarrow.parquet as pq

            cols = [c.lower() for c in pq.read_schema(path).names]
        elif file_kind(path) == "jsonl":
            cols = []
            for line in first_lines(path, 20):
                try:
                    cols += [k.lower() for k in json.loads(line)]
                except (json.JSONDecodeError, TypeError):
                    continue
        fmt = detect_format(path, cols)
    digest = sha256_of(path)
    report(0.1, f"reading {fmt}")
    with store.transaction(db_path) as con:
        con.execute("SET TimeZone = 'UTC'")
        ingest_id = con.execute("SELECT nextval('ingest_seq')").fetchall()[0][0]
        try:
            mode = _stage(con, path, fmt, mapping)
        except InputError:
            raise
        except Exception as exc:  # the reader's own complaint, with the file named
            raise InputError(f"could not be read as {fmt}: {exc}", file=str(path),
                             fix="check the format (--format) and the header") from exc
        report(0.5, "validating rows")
        _validate(con, fmt)
        n_bad = con.execute("SELECT count(*) FROM checked WHERE reason IS NOT NULL").fetchall()[0][0]
        if n_bad:
            _line_numbers(con, path, mode)
        report(0.65, "removing duplicates")
        empty_store = con.execute("SELECT count(*) = 0 FROM (SELECT 1 FROM events LIMIT 1)").fetchall()[0][0]
        stored = "" if empty_store else """
              AND NOT EXISTS (SELECT 1 FROM events e WHERE e.ts = g.ts AND e.user_id = g.user_id
                  AND e.item_id = g.item_id AND e.event_type = g.event_type
                  AND e.session_id IS NOT DISTINCT FROM g.session_id)"""
        extra = ", category, brand" if fmt == "rees46" else ""
        con.execute(f"""CREATE OR REPLACE TEMP TABLE fresh AS
            SELECT * FROM (
                SELECT rn, ts_parsed AS ts, trim(user_id) AS user_id, trim(item_id) AS item_id, event_type,
                       nullif(session_id, '') AS session_id, CAST(try_cast(dwell_ms AS DOUBLE) AS BIGINT) AS dwell_ms,
                       try_cast(position AS INTEGER) AS position, page, try_cast(price AS DOUBLE) AS price,
                       try_cast(rating AS DOUBLE) AS rating, coalesce(?, source) AS source {extra}
                FROM checked WHERE reason IS NULL) g
            WHERE true {stored}
            QUALIFY row_number() OVER (PARTITION BY ts, user_id, item_id, event_type, session_id ORDER BY rn) = 1""",
                    [source])
        report(0.8, "loading")
        con.execute("""INSERT INTO events SELECT ts, user_id, item_id, event_type, session_id, dwell_ms, position,
                       page, price, rating, source, ? FROM fresh""", [ingest_id])
        _upsert_items_from_events(con, fmt)
        con.execute("""INSERT INTO users (user_id, first_seen) SELECT user_id, min(ts) FROM fresh GROUP BY user_id
                       ON CONFLICT (user_id) DO UPDATE
                       SET first_seen = least(coalesce(users.first_seen, excluded.first_seen), excluded.first_seen)""")
        con.execute("INSERT INTO rejects SELECT ?, line, raw, reason FROM struct_rejects", [ingest_id])
        if n_bad:
            con.execute("""INSERT INTO rejects SELECT ?, r.line, r.raw, c.reason
                           FROM checked c JOIN rn_line r USING (rn) WHERE c.reason IS NOT NULL""", [ingest_id])
        n_good = con.execute("SELECT count(*) FROM checked").fetchall()[0][0] - n_bad
        loaded = con.execute("SELECT count(*) FROM fresh").fetchall()[0][0]
        structural = con.execute("SELECT count(*) FROM struct_rejects").fetchall()[0][0]
        # for sequence files a row is one (user, item) event; a malformed line counts as one row
        rows_read = n_good + n_bad + structural
        rejected = n_bad + structural
        result = IngestResult(ingest_id, str(path), fmt, rows_read, loaded, rejected, n_good - loaded,
                              time.perf_counter() - started)
        con.execute(
            """INSERT INTO ingests VALUES (?, ?, ?, ?, 'events', ?, ?, ?, ?, now() - to_microseconds(?), now(),
               'done', NULL)""",
            [ingest_id, str(path), digest, fmt, rows_read, loaded, rejected, result.duplicates,
             int(result.seconds * 1e6)],
        )
        for table in ("staged", "checked", "fresh", "struct_rejects", "rn_line", "lines"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    report(1.0, "done")
    return result


def _upsert_items_from_events(con, fmt: str) -> None:
    if fmt == "rees46":
        # attributes derived from the rows, the latest price wins; a catalog file's values are kept
        con.execute("""INSERT INTO items (item_id, category, brand, price)
            SELECT item_id, arg_max(nullif(category, ''), ts), arg_max(nullif(brand, ''), ts), arg_max(price, ts)
            FROM fresh GROUP BY item_id
            ON CONFLICT (item_id) DO UPDATE SET
              category = CASE WHEN items.from_catalog AND items.category IS NOT NULL THEN items.category
                              ELSE coalesce(excluded.category, items.category) END,
              brand = CASE WHEN items.from_catalog AND items.brand IS NOT NULL THEN items.brand
                           ELSE coalesce(excluded.brand, items.brand) END,
              price = coalesce(excluded.price, items.price)""")
    else:
        con.execute("""INSERT INTO items (item_id) SELECT DISTINCT item_id FROM fresh
                       ON CONFLICT (item_id) DO NOTHING""")


def ingest_history(db_path=None) -> pl.DataFrame:
    return store.query(
        """SELECT ingest_id, file, format, kind, rows_read, loaded, rejected, duplicates, started_at,
                  finished_at, status FROM ingests ORDER BY ingest_id DESC""",
        db_path=db_path,
    )


def rejects_for(ingest_id: int, limit: int = 1000, db_path=None) -> pl.DataFrame:
    return store.query(
        "SELECT line_no, reason, raw FROM rejects WHERE ingest_id = ? ORDER BY line_no LIMIT ?",
        [ingest_id, limit],
        db_path=db_path,
    )


from core.data.catalog import ingest_catalog  # noqa: E402  (re-exported: one import for callers)

__all__ = ["IngestResult", "ingest_events", "ingest_catalog", "detect_format", "ingest_history", "rejects_for"]
