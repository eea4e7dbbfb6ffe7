"""Load event logs and catalogs into the store, in one transaction each, streaming through DuckDB.

Every row is either loaded, counted as a duplicate or rejected with its line number, raw
text and a reason a person can act on: ``rows_read = loaded + rejected + duplicates``.
A whole-file problem raises ``InputError`` and writes nothing (no events, no ingests row).

All set-based SQL (readers and classification in ``core.data.readers``), two paths:

* fast (CSV whose every physical line is one row — the common export): DuckDB's parallel CSV parser
  classifies and inserts good rows straight into ``events``; rejected rows are collected by a second
  read only when the counts say there are some; duplicates are then found among the new rows and
  deleted. If any line is irregular (blank, undecodable, quoted line break, mixed line ends) the
  transaction is rolled back and the file takes the line path.
* line (JSONL, sequence files, Parquet, irregular CSV): every physical line is read as one value and
  split in SQL into a temp table ``stage``; duplicates are left out; then the inserts.

Duplicates are found by a 64-bit hash of (ts, user, item, type, session) first, exact comparison only
within hash matches. Items and users are derived, rejects and the ingests row recorded, all in the
same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from core import store
from core.data import formats, readers
from core.data.formats import detect_format, lit
from core.data.ingest_support import (  # noqa: F401  (re-exported for callers)
    IngestResult,
    _check_file,
    _Digest,
    _Steps,
    ingest_history,
    rejects_for,
    sha256_of,
)
from core.errors import InputError

Progress = Callable[[float, str], None]
KEY = "ts, user_id, item_id, event_type, session_id"
TEMP_TABLES = ("stage", "dups", "line_map", "bad", "item_attrs", formats.REJECTS_TABLE, formats.REJECTS_SCAN)


_lit = lit  # used by core.data.catalog


def _drop_temp(con) -> None:
    for table in TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _line_rejects(con) -> int:
    """Lines DuckDB's line reader refused (invalid UTF-8, …), as ``line_rejects(line, raw, reason)``."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary", [formats.REJECTS_TABLE]
    ).fetchall()[0][0]
    con.execute("CREATE OR REPLACE TEMP TABLE line_map (line BIGINT, raw VARCHAR, reason VARCHAR)")
    if not exists:
        return 0
    con.execute(f"""INSERT INTO line_map
        SELECT line, trim(any_value(csv_line), chr(10) || chr(13)),
               CASE WHEN bool_or(error_type = 'INVALID ENCODING')
                    THEN 'bad encoding: the line is not valid UTF-8 — save the file as UTF-8'
                    ELSE 'unreadable line (' || any_value(error_type) || '): control characters or a line '
                         || 'longer than 2 MB' END
        FROM {formats.REJECTS_TABLE} GROUP BY line""")
    return con.execute("SELECT count(*) FROM line_map").fetchall()[0][0]


def _line_of(n_skipped: int) -> str:
    """SQL for the physical line of a ``stage`` row: its ordinal, shifted past the lines the reader
    skipped before it (skipped line i-th in order has ``line - i`` lines read before it)."""
    if not n_skipped:
        return "s.ord"
    return """s.ord + (SELECT count(*) FROM (SELECT line - row_number() OVER (ORDER BY line) AS before
                                            FROM line_map) m WHERE m.before < s.ord)"""


def ingest_events(
    path,
    fmt: str | None = None,
    *,
    db_path=None,
    mapping: dict | None = None,
    progress: Progress | None = None,
    source: str | None = None,
) -> IngestResult:
    """Load one event log. ``fmt`` None = detect from the header; ``mapping``: canonical → source column
    (native files); ``source``: label stored in ``events.source`` (default: the file's own or the format)."""
    path = Path(path)
    started = time.perf_counter()
    report = progress or (lambda fraction, message="": None)
    _check_file(path)
    if fmt is not None and fmt not in formats.FORMATS:
        raise InputError(
            f"unknown format '{fmt}'", file=str(path), fix="use one of " + ", ".join(formats.FORMATS)
        )
    report(0.0, "detecting the format")
    fmt = fmt or ("native" if mapping else detect_format(path))
    digest = _Digest(path)
    with store.connect(db_path) as con:
        con.execute("SET TimeZone = 'UTC'")
        _drop_temp(con)
        steps = _Steps()
        result = None
        report(0.05, f"reading {fmt}")
        if (
            fmt in ("native", "rees46", "retailrocket")
            and formats.file_kind(path) == "text"
            and path.suffix != ".gz"
        ):
            try:
                result = _in_transaction(
                    con, lambda: _fast_load(con, path, fmt, mapping, source, digest, started, report, steps)
                )
            finally:
                con.execute("SET preserve_insertion_order = true")  # the line reader numbers rows in order
        if result is None:  # not CSV, or the file has irregular lines: stage it line by line
            _drop_temp(con)
            steps = _Steps()
            _stage(con, path, fmt, mapping, source, False)  # temp tables only: outside the transaction
            n_skipped = _line_rejects(con)
            steps("read")
            total, n_bad, n_rows = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL), count(DISTINCT ord) FROM stage"
            ).fetchall()[0]
            if n_rows + n_skipped == 0:
                raise InputError(
                    "has a header but no rows", file=str(path), fix="export the log again with its rows"
                )
            result = _in_transaction(
                con, lambda: _load(con, path, fmt, digest, total - n_bad, n_skipped, started, report, steps)
            )
        _drop_temp(con)
    steps("commit")
    result.steps = steps.seconds
    result.seconds = time.perf_counter() - started
    report(1.0, "done")
    return result


def _in_transaction(con, work):
    """Run ``work`` in one transaction: committed if it returns a result, rolled back if it returns None
    (nothing to keep) or raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        result = work()
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT" if result is not None else "ROLLBACK")
    return result


EVENT_COLUMNS = (
    "ts, user_id, item_id, event_type, session_id, dwell_ms, position, page, price, rating, source"
)


def _fast_load(
    con,
    path: Path,
    fmt: str,
    mapping,
    source,
    digest: _Digest,
    started: float,
    report: Progress,
    steps: _Steps,
) -> IngestResult | None:
    """CSV straight from DuckDB's parallel CSV parser into ``events`` (no staging copy), then duplicates
    deleted, items and users derived, rejects recorded. Returns None — and the caller rolls back — unless
    every physical line became exactly one row, which is what makes reader row + 1 the line number."""
    sql, _ = readers.event_sql(con, path, fmt, mapping, source, fast=True)
    ingest_id = con.execute("SELECT nextval('ingest_seq')").fetchall()[0][0]
    # stored order does not matter: let the insert run in parallel. Of rows with an equal key in one file
    # one is kept, not necessarily the first; order (and the reader's row numbers) is kept again after
    con.execute("SET preserve_insertion_order = false")
    try:
        inserted = con.execute(
            f"INSERT INTO events SELECT {EVENT_COLUMNS}, ? FROM ({sql}) WHERE reason IS NULL", [ingest_id]
        ).fetchall()[0][0]
    except duckdb.Error:  # e.g. mixed line ends: the line-by-line reader copes (the caller resets the order)
        return None
    con.execute("SET preserve_insertion_order = true")
    digest.join()
    refused = con.execute(f"SELECT count(*) FROM {formats.REJECTS_TABLE}").fetchall()[0][0]
    n_bad = (digest.lines or 0) - 1 - inserted
    if refused or digest.lines is None or n_bad < 0:
        return None
    con.execute("CREATE TEMP TABLE bad (ord BIGINT, raw VARCHAR, reason VARCHAR)")
    if n_bad:
        report(0.4, "collecting rejected rows")
        con.execute(f"INSERT INTO bad SELECT ord, NULL, reason FROM ({sql}) WHERE reason IS NOT NULL")
        if con.execute("SELECT count(*) FROM bad").fetchall()[0][0] != n_bad:
            return None
        con.execute(f"""UPDATE bad SET raw = l.line FROM (
            SELECT ord, line FROM {readers.lines_reader(path)} WHERE ord IN (SELECT ord FROM bad)) l
            WHERE bad.ord = l.ord""")
    if inserted + n_bad == 0:
        raise InputError("has a header but no rows", file=str(path), fix="export the log again with its rows")
    steps("read")
    report(0.6, "finding duplicates")
    n_dups = _find_duplicates(con, ingest_id)
    steps("duplicates")
    report(0.8, "updating items and users")
    if fmt == "rees46":
        skip = "WHERE ord NOT IN (SELECT ord FROM bad)" if n_bad else ""
        con.execute(f"CREATE TEMP TABLE item_attrs AS {readers.rees46_item_sql(path)} {skip} GROUP BY ALL")
    else:
        con.execute(
            "CREATE TEMP TABLE item_attrs AS SELECT DISTINCT item_id FROM events WHERE ingest_id = ?",
            [ingest_id],
        )
    _upsert_items_from_events(con, fmt)
    steps("items")
    _upsert_users(con, ingest_id)
    steps("users")
    con.execute("INSERT INTO rejects SELECT ?, ord, raw, reason FROM bad", [ingest_id])
    return _record(con, ingest_id, path, fmt, digest, inserted - n_dups, n_bad, n_dups, started)


def _record(
    con,
    ingest_id: int,
    path: Path,
    fmt: str,
    digest: _Digest,
    loaded: int,
    rejected: int,
    n_dups: int,
    started: float,
) -> IngestResult:
    """The ingests row, inside the load's transaction."""
    result = IngestResult(
        ingest_id,
        str(path),
        fmt,
        loaded + rejected + n_dups,
        loaded,
        rejected,
        n_dups,
        time.perf_counter() - started,
    )
    con.execute(
        """INSERT INTO ingests VALUES (?, ?, ?, ?, 'events', ?, ?, ?, ?, now() - to_microseconds(?), now(),
           'done', NULL)""",
        [
            ingest_id,
            str(path),
            digest.result(),
            fmt,
            result.rows_read,
            loaded,
            rejected,
            n_dups,
            int(result.seconds * 1e6),
        ],
    )
    return result


def _load(
    con,
    path: Path,
    fmt: str,
    digest: _Digest,
    good: int,
    n_skipped: int,
    started: float,
    report: Progress,
    steps: _Steps,
) -> IngestResult:
    """Line-by-line path: the writes from ``stage``, inside the caller's transaction."""
    report(0.6, "finding duplicates")
    n_dups = _find_duplicates(con)
    steps("duplicates")
    ingest_id = con.execute("SELECT nextval('ingest_seq')").fetchall()[0][0]
    report(0.7, "loading events")
    anti = "AND NOT EXISTS (SELECT 1 FROM dups d WHERE d.ord = s.ord AND d.k = s.k)" if n_dups else ""
    con.execute(
        f"INSERT INTO events SELECT {EVENT_COLUMNS}, ? FROM stage s WHERE reason IS NULL {anti}", [ingest_id]
    )
    steps("events")
    report(0.85, "updating items and users")
    if fmt == "rees46":
        con.execute("""CREATE TEMP TABLE item_attrs AS
            SELECT item_id, max(category) AS category, max(brand) AS brand,
                   arg_max(price, ts) FILTER (WHERE price IS NOT NULL) AS price
            FROM stage WHERE reason IS NULL GROUP BY item_id""")
    else:
        con.execute("CREATE TEMP TABLE item_attrs AS SELECT DISTINCT item_id FROM stage WHERE reason IS NULL")
    _upsert_items_from_events(con, fmt)
    steps("items")
    _upsert_users(con, ingest_id)
    steps("users")
    # a sequence line yields several events: one bad line is one rejected row
    con.execute(
        f"""INSERT INTO rejects
        SELECT ?, {_line_of(n_skipped)}, any_value(raw), any_value(reason) FROM stage s
        WHERE reason IS NOT NULL GROUP BY s.ord""",
        [ingest_id],
    )
    con.execute("INSERT INTO rejects SELECT ?, line, raw, reason FROM line_map", [ingest_id])
    rejected = con.execute("SELECT count(*) FROM rejects WHERE ingest_id = ?", [ingest_id]).fetchall()[0][0]
    return _record(con, ingest_id, path, fmt, digest, good - n_dups, rejected, n_dups, started)


def _stage(con, path: Path, fmt: str, mapping: dict | None, source: str | None, fast: bool) -> None:
    """Temp table ``stage``: the file's rows classified, with the hash of the duplicate key."""
    sql, _ = readers.event_sql(con, path, fmt, mapping, source, fast=fast)
    try:
        con.execute(
            f"CREATE TEMP TABLE stage AS SELECT *, CASE WHEN reason IS NULL THEN hash({KEY}) END AS h "
            f"FROM ({sql})"
        )
    except duckdb.Error as exc:  # the reader's own complaint, with the file named
        raise InputError(
            f"could not be read as {fmt}: {exc}", file=str(path), fix="check the format and the header"
        ) from exc


def _find_duplicates(con, ingest_id: int | None = None) -> int:
    """Rows equal on (ts, user, item, type, session — NULL equals NULL) to a stored event or to an earlier
    row of the file. Hash first, exact comparison only among hash matches. Line-by-line path: ``dups(ord, k)``
    of ``stage`` rows; fast path (``ingest_id``: the file's rows are already in ``events``): deleted again.
    Returns how many."""
    if ingest_id is None:
        rows, order, where, ident = "stage", "ord, k", "h IS NOT NULL", "ord, k"
        con.execute("CREATE TEMP TABLE dups AS SELECT ord, k FROM stage LIMIT 0")
        hashed = f"(SELECT *, h AS hk FROM {rows} WHERE {where})"
    else:
        order, ident = "rid", "rid"
        con.execute("CREATE TEMP TABLE dups (rid BIGINT)")
        hashed = (
            f"(SELECT rowid AS rid, {KEY}, hash({KEY}) AS hk FROM events WHERE ingest_id = {int(ingest_id)})"
        )
    con.execute(f"""INSERT INTO dups
        SELECT {ident} FROM (
            SELECT {ident}, row_number() OVER (PARTITION BY {KEY} ORDER BY {order}) AS rn
            FROM {hashed} WHERE hk IN (SELECT hk FROM {hashed} GROUP BY hk HAVING count(*) > 1))
        WHERE rn > 1""")
    new = "stage WHERE reason IS NULL" if ingest_id is None else f"events WHERE ingest_id = {int(ingest_id)}"
    old = "" if ingest_id is None else f"AND ingest_id <> {int(ingest_id)}"
    lo, hi = con.execute(f"SELECT min(ts), max(ts) FROM {new}").fetchall()[0]
    stored = (
        con.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM events WHERE ts BETWEEN ? AND ? {old} LIMIT 1)", [lo, hi]
        ).fetchall()[0][0]
        if lo is not None
        else 0
    )
    if stored:
        me = "(SELECT *, rowid AS rid FROM " + new + ")"
        con.execute(
            f"""INSERT INTO dups
            SELECT {ident} FROM {me} s
            SEMI JOIN (SELECT {KEY} FROM events WHERE ts BETWEEN ? AND ? {old}) e
              ON s.ts = e.ts AND s.user_id = e.user_id AND s.item_id = e.item_id
             AND s.event_type = e.event_type
             AND s.session_id IS NOT DISTINCT FROM e.session_id
            EXCEPT SELECT {ident} FROM dups""",
            [lo, hi],
        )
    n = con.execute("SELECT count(*) FROM dups").fetchall()[0][0]
    if n and ingest_id is not None:
        con.execute("DELETE FROM events WHERE rowid IN (SELECT rid FROM dups)")
    return n


def _upsert_items_from_events(con, fmt: str) -> None:
    """Items named by the file's good rows, from temp table ``item_attrs`` (REES46: category, brand and
    the latest price from the rows — a catalog file's values are kept unless empty); items missing from the
    catalog are created with unknown attributes."""
    if fmt == "rees46":
        con.execute("""INSERT INTO items (item_id, category, brand, price)
            SELECT item_id, category, brand, price FROM item_attrs
            ON CONFLICT (item_id) DO UPDATE SET
              category = CASE WHEN items.from_catalog AND items.category IS NOT NULL THEN items.category
                              ELSE coalesce(excluded.category, items.category) END,
              brand = CASE WHEN items.from_catalog AND items.brand IS NOT NULL THEN items.brand
                           ELSE coalesce(excluded.brand, items.brand) END,
              price = CASE WHEN items.from_catalog AND items.price IS NOT NULL THEN items.price
                           ELSE coalesce(excluded.price, items.price) END""")
    else:
        con.execute(
            "INSERT INTO items (item_id) SELECT item_id FROM item_attrs ON CONFLICT (item_id) DO NOTHING"
        )


def _upsert_users(con, ingest_id: int) -> None:
    """Users of the new events; first_seen = their earliest event."""
    con.execute(
        """INSERT INTO users (user_id, first_seen)
                    SELECT user_id, min(ts) FROM events WHERE ingest_id = ? GROUP BY user_id
                    ON CONFLICT (user_id) DO UPDATE
                    SET first_seen = least(coalesce(users.first_seen, excluded.first_seen),
                                           excluded.first_seen)""",
        [ingest_id],
    )


from core.data.catalog import ingest_catalog  # noqa: E402  (re-exported: one import for callers)

__all__ = [
    "IngestResult",
    "ingest_events",
    "ingest_catalog",
    "detect_format",
    "ingest_history",
    "rejects_for",
]
