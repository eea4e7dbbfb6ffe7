"""Load event logs and catalogs into the store, in one transaction each, streaming through DuckDB.

Every row is either loaded, counted as a duplicate or rejected with its line number, raw
text and a reason a person can act on: ``rows_read = loaded + rejected + duplicates``.
A whole-file problem raises ``InputError`` and writes nothing (no events, no ingests row).

All set-based SQL (readers and classification in ``core.data.readers``). The file is parsed once, into
a temp table ``stage`` (typed columns, the reason a row is rejected, the hash of its duplicate key); every
write is then derived from ``stage`` inside one transaction, so nothing is ever deleted from ``events``
(deleting from rows appended in the same transaction makes DuckDB re-append all of them at commit).
Two ways to fill ``stage``:

* fast (uncompressed CSV: native, REES46, RetailRocket): DuckDB's parallel CSV parser. If rows are
  rejected, an ordered read of the lines finds them by their text. If a rejected line had quotes (its text
  rebuilt from the fields differs), an ordered parse numbers them instead — only valid when every physical
  line became one row, so such a file with blank lines or quoted line breaks takes the line path, as does a
  file with a line the parser refuses (undecodable, wrong width) or cannot split (mixed line ends).
* line (JSONL, sequence and pairs files, gzip, and the CSV above): every physical line is read as one
  value with its number and split in SQL. Parquet is read by ``read_parquet``, numbered by row.

Duplicates (``core.data.duplicates``) are left out of the insert. Items and users are derived, rejects and
the ingests row recorded, all in the same transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from core import store
from core.data import formats, readers
from core.data.catalog import ingest_catalog
from core.data.duplicates import KEY, find_duplicates
from core.data.formats import detect_format
from core.data.ingest_support import (
    IngestResult,
    _check_file,
    _Digest,
    _line_of,
    _line_rejects,
    _Steps,
    flush_in_background,
    ingest_history,
    merge,
    rejects_for,
)
from core.errors import InputError

Progress = Callable[[float, str], None]
TEMP_TABLES = (
    "stage",
    "dups",
    "merge_src",
    "line_map",
    "bad",
    "bad_text",
    "item_attrs",
    formats.REJECTS_TABLE,
    formats.REJECTS_SCAN,
)


def _drop_temp(con) -> None:
    for table in TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {table}")


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
        report(0.05, f"reading {fmt}")
        staged = None
        if (
            fmt in ("native", "rees46", "retailrocket")
            and formats.file_kind(path) == "text"
            and path.suffix != ".gz"
        ):
            staged = _stage_fast(con, path, fmt, mapping, source, digest, report)
        if staged is None:  # not CSV, or the file has irregular lines: stage it line by line
            _drop_temp(con)
            steps = _Steps()
            _stage(con, path, fmt, mapping, source)
            n_skipped = _line_rejects(con)
            total, n_bad, n_rows = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL), count(DISTINCT ord) FROM stage"
            ).fetchall()[0]
            staged = (total - n_bad, n_rows, n_skipped, "ord, k", {})
        good, n_rows, n_skipped, ident, constants = staged
        if n_rows + n_skipped == 0:
            raise InputError(
                "has a header but no rows", file=str(path), fix="export the log again with its rows"
            )
        steps("read")
        result = _in_transaction(
            con,
            lambda: _load(con, path, fmt, digest, good, n_skipped, ident, constants, started, report, steps),
        )
        _drop_temp(con)
    steps("commit")
    result.steps = steps.seconds
    result.seconds = time.perf_counter() - started
    report(1.0, "done")
    return result


def _in_transaction(con, work):
    """Run ``work`` in one transaction: committed if it returns, rolled back if it raises."""
    con.execute("BEGIN TRANSACTION")
    try:
        result = work()
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return result


def _stage_fast(
    con, path: Path, fmt: str, mapping, source, digest: _Digest, report: Progress
) -> tuple[int, int, int, str, dict[str, str]] | None:
    """``stage`` from DuckDB's parallel CSV parser, and ``bad`` (line, raw, reason) for rejected rows.
    Returns (good rows, rows, 0 skipped lines, row identity, constant columns) — or None, and the caller
    stages the file line by line, if the parser refused a line or if the rejected rows cannot be numbered
    (see ``_number_rejected``)."""
    sql = readers.event_sql(con, path, fmt, mapping, source, fast=True)
    constants = readers.constant_columns(path, fmt, mapping, source)
    varying = ", ".join(c for c in formats.CANONICAL if c not in constants)
    # stored order does not matter: let the parser and the copy run in parallel. Of rows with an equal key
    # in one file one is kept, not necessarily the first
    con.execute("SET preserve_insertion_order = false")
    try:
        con.execute(
            f"""CREATE TEMP TABLE stage AS
                SELECT {varying}, category, brand, reason, raw,
                       CASE WHEN reason IS NULL THEN hash({KEY}) END AS h
                FROM ({sql})"""
        )
    except duckdb.Error:  # e.g. mixed line ends: the line-by-line reader copes
        return None
    finally:
        con.execute("SET preserve_insertion_order = true")  # the line reader numbers rows in order
    if con.execute(f"SELECT count(*) FROM {formats.REJECTS_TABLE}").fetchall()[0][0]:
        return None  # the parser refused a line
    total, n_bad = con.execute("SELECT count(*), count(reason) FROM stage").fetchall()[0]
    con.execute("CREATE TEMP TABLE bad (ord BIGINT, raw VARCHAR, reason VARCHAR)")
    if n_bad:  # numbering needs an ordered read: only for files that have rejected rows
        report(0.3, "numbering rejected rows")
        if not _number_rejected(con, path, sql, n_bad, total, digest):
            return None
    return total - n_bad, total, 0, "rid", constants


def _number_rejected(con, path: Path, sql: str, n_bad: int, n_rows: int, digest: _Digest) -> bool:
    """``bad`` (line, raw, reason) for the ``n_bad`` rejected rows of ``stage``: by their text, else by an
    ordered parse — which needs every physical line to have become one row (no blank lines, no quoted line
    breaks: reader row + 1 is the line only then). False if neither accounts for every rejected row."""
    if _number_by_text(con, path, n_bad):
        return True
    if n_rows != (digest.line_count() or 0) - 1:
        return False
    return _number_by_parse(con, path, sql, n_bad)


def _number_by_text(con, path: Path, n_bad: int) -> bool:
    """One ordered pass over the file's lines finds the rejected rows by their text (``stage.raw``, rebuilt
    from the fields; 1.1 s on 5M lines), numbered by the line reader itself, so blank lines do not matter.
    Equal text parses the same, so every line found is a rejected row; a rejected line with quotes rebuilds
    differently and is not found, and then this returns False."""
    # a table of its own, so that the planner knows it is the small side of the join
    con.execute("""CREATE TEMP TABLE bad_text AS
        SELECT raw, any_value(reason) AS reason FROM stage WHERE reason IS NOT NULL GROUP BY raw""")
    con.execute(f"""INSERT INTO bad SELECT l.ord, l.line, b.reason
        FROM {readers.lines_reader(path)} l JOIN bad_text b ON l.line = b.raw""")
    refused = con.execute(f"SELECT count(*) FROM {formats.REJECTS_TABLE}").fetchall()[0][0]
    if not refused and con.execute("SELECT count(*) FROM bad").fetchall()[0][0] == n_bad:
        return True  # (a line the line reader refused would shift the numbers after it)
    con.execute("DELETE FROM bad")
    return False


def _number_by_parse(con, path: Path, sql: str, n_bad: int) -> bool:
    """An ordered parse numbers the rejected rows (reader row + 1 is the line: the caller checked that
    every line is one row), a pass over the lines adds their raw text (about 4 s more than by text)."""
    con.execute(f"INSERT INTO bad SELECT ord, NULL, reason FROM ({sql}) WHERE reason IS NOT NULL")
    if con.execute("SELECT count(*) FROM bad").fetchall()[0][0] != n_bad:
        return False
    con.execute(f"""UPDATE bad SET raw = l.line FROM (
        SELECT ord, line FROM {readers.lines_reader(path)} WHERE ord IN (SELECT ord FROM bad)) l
        WHERE bad.ord = l.ord""")
    return True


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
    ident: str,
    constants: dict[str, str],
    started: float,
    report: Progress,
    steps: _Steps,
) -> IngestResult:
    """The writes from ``stage``, inside the caller's transaction. ``ident``: what names a ``stage`` row —
    ``rid`` (its rowid; rejected rows are in ``bad``) or ``ord, k`` (line, position in a sequence line);
    ``constants``: event columns left out of ``stage``, with their one value."""
    report(0.5, "finding duplicates")
    n_dups = find_duplicates(con, ident)
    steps("duplicates")
    ingest_id = con.execute("SELECT nextval('ingest_seq')").fetchall()[0][0]
    report(0.6, "loading events")
    if not n_dups:
        anti = ""
    elif ident == "rid":
        anti = "AND s.rowid NOT IN (SELECT rid FROM dups)"
    else:
        anti = "AND NOT EXISTS (SELECT 1 FROM dups d WHERE d.ord = s.ord AND d.k = s.k)"
    columns = ", ".join(constants.get(c, c) for c in formats.CANONICAL)  # constants: not staged
    # stored order carries no meaning: write in parallel. The setting is global to the process's DuckDB
    # instance (other sessions lose order without ORDER BY meanwhile), so it is off for this insert only
    con.execute("SET preserve_insertion_order = false")
    try:
        con.execute(
            f"INSERT INTO events SELECT {columns}, ? FROM stage s WHERE reason IS NULL {anti}", [ingest_id]
        )
    finally:
        con.execute("SET preserve_insertion_order = true")
    flushing = flush_in_background(con)
    steps("events")
    try:
        rejected = _write_items_users_rejects(con, fmt, ident, n_skipped, ingest_id, report, steps)
    finally:  # never leave the thread holding DuckDB's descriptor past the transaction
        flushing.join()
    return _record(con, ingest_id, path, fmt, digest, good - n_dups, rejected, n_dups, started)


def _write_items_users_rejects(
    con, fmt: str, ident: str, n_skipped: int, ingest_id: int, report: Progress, steps: _Steps
) -> int:
    """Items, users and rejects from ``stage``, inside the load's transaction; returns how many rows were
    rejected."""
    report(0.85, "updating items and users")
    if fmt == "rees46":
        con.execute("""CREATE TEMP TABLE item_attrs AS
            SELECT item_id, any_value(category) AS category, any_value(brand) AS brand,
                   arg_max(price, ts) FILTER (WHERE price IS NOT NULL) AS price
            FROM stage WHERE reason IS NULL GROUP BY item_id""")
    else:
        con.execute("CREATE TEMP TABLE item_attrs AS SELECT DISTINCT item_id FROM stage WHERE reason IS NULL")
    _upsert_items_from_events(con, fmt)
    steps("items")
    _upsert_users(con)
    steps("users")
    if ident == "rid":
        con.execute("INSERT INTO rejects SELECT ?, ord, raw, reason FROM bad", [ingest_id])
    else:  # a sequence line yields several events: one bad line is one rejected row
        con.execute(
            f"""INSERT INTO rejects
            SELECT ?, {_line_of(n_skipped)}, any_value(raw), any_value(reason) FROM stage s
            WHERE reason IS NOT NULL GROUP BY s.ord""",
            [ingest_id],
        )
        con.execute("INSERT INTO rejects SELECT ?, line, raw, reason FROM line_map", [ingest_id])
    return con.execute("SELECT count(*) FROM rejects WHERE ingest_id = ?", [ingest_id]).fetchall()[0][0]


def _stage(con, path: Path, fmt: str, mapping: dict | None, source: str | None) -> None:
    """Temp table ``stage`` read line by line: the file's rows classified, with the hash of the duplicate key."""
    sql = readers.event_sql(con, path, fmt, mapping, source)
    try:
        con.execute(
            f"CREATE TEMP TABLE stage AS SELECT *, CASE WHEN reason IS NULL THEN hash({KEY}) END AS h "
            f"FROM ({sql})"
        )
    except duckdb.Error as exc:  # the reader's own complaint, with the file named
        raise InputError(
            f"could not be read as {fmt}: {exc}", file=str(path), fix="check the format and the header"
        ) from exc


def _upsert_items_from_events(con, fmt: str) -> None:
    """Items named by the file's good rows, from temp table ``item_attrs`` (REES46: category, brand and
    the latest price from the rows — a catalog file's values are kept unless empty); items missing from the
    catalog are created with unknown attributes."""
    if fmt != "rees46":
        merge(con, "items", "item_id", "item_attrs", ["item_id"], None)
        return
    keep = "CASE WHEN t.from_catalog AND t.{c} IS NOT NULL THEN t.{c} ELSE coalesce(s.{c}, t.{c}) END"
    merge(
        con,
        "items",
        "item_id",
        "item_attrs",
        ["item_id", "category", "brand", "price"],
        ", ".join(f"{c} = {keep.format(c=c)}" for c in ("category", "brand", "price")),
    )


def _upsert_users(con) -> None:
    """Users of the file's good rows; first_seen = their earliest event. Duplicates may count: each repeats
    the (user, ts) of a row loaded now or stored before, so the minimum is the same (read from the in-memory
    ``stage``, not from the compressed ``events``)."""
    merge(
        con,
        "users",
        "user_id",
        "(SELECT user_id, min(ts) AS first_seen FROM stage WHERE h IS NOT NULL GROUP BY user_id)",
        ["user_id", "first_seen"],
        "first_seen = least(coalesce(t.first_seen, s.first_seen), s.first_seen)",
    )


__all__ = [
    "IngestResult",
    "ingest_events",
    "ingest_catalog",
    "detect_format",
    "ingest_history",
    "rejects_for",
]
