"""An event log parsed once into the temp table ``stage``, every row classified, ready for the load.

Two ways to fill ``stage``:

* fast (uncompressed CSV whose header is on line 1: native, REES46, RetailRocket): DuckDB's parallel CSV
  parser. If rows are rejected, an ordered read of the lines finds them by their text. If a rejected line
  had quotes (its text rebuilt from the fields differs), an ordered parse numbers them instead — only valid
  when every physical line became one row, so such a file with blank lines or quoted line breaks takes the
  line path, as does a file with a line the parser refuses (undecodable, wrong width), one it cannot split
  (mixed line ends), or an id holding a control character (checked on the distinct ids: a per-row check
  would cost about a second per 5M rows).
* line (JSONL, sequence and pairs files, gzip, and the CSV above): every physical line is read as one value
  with its number and split in SQL. Parquet is read by ``read_parquet``, numbered by row.

Both end with ``item_attrs`` (the items the good rows name) and ``user_first`` (each user's first event).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from core.data import formats, readers
from core.data.columns import ColumnMap
from core.data.duplicates import KEY
from core.data.ingest_support import _Digest, _line_rejects
from core.data.lines import JOINS_TABLE, lines_reader
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
    "user_first",
    "user_sessions",
    "forgotten_ids",
    JOINS_TABLE,
    formats.REJECTS_TABLE,
    formats.REJECTS_SCAN,
)


@dataclass
class Staged:
    good: int  # rows without a reason
    rows: int  # rows read (lines, Parquet rows; a sequence line counts once)
    skipped: int  # lines the line reader refused (not UTF-8), in ``line_map``
    ident: str  # what names a ``stage`` row: "rid" (fast: rejected rows are in ``bad``) or "ord, k"
    constants: dict[str, str] = field(default_factory=dict)  # event columns left out of ``stage``: SQL value
    columns: ColumnMap = field(default_factory=ColumnMap)


def drop_temp(con) -> None:
    for table in TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def stage_fast(
    con, path: Path, fmt: str, mapping, source, digest: _Digest, report: Progress
) -> Staged | None:
    """``stage`` from DuckDB's parallel CSV parser, and ``bad`` (line, raw, reason) for rejected rows — or
    None, and the caller stages the file line by line (see the module's docstring)."""
    read = readers.event_sql(con, path, fmt, mapping, source, fast=True)
    constants = readers.constant_columns(path, fmt, mapping, source)
    varying = ", ".join(c for c in formats.CANONICAL if c not in constants)
    try:  # of rows with an equal key in one file one is kept, not necessarily the first
        con.execute(
            f"""CREATE TEMP TABLE stage AS
                SELECT {varying}, category, brand, reason, raw,
                       CASE WHEN reason IS NULL THEN hash({KEY}) END AS h
                FROM ({read.sql})"""
        )
    except duckdb.Error:  # e.g. mixed line ends: the line-by-line reader copes
        return None
    if con.execute(f"SELECT count(*) FROM {formats.REJECTS_TABLE}").fetchall()[0][0]:
        return None  # the parser refused a line
    total, n_bad = con.execute("SELECT count(*), count(reason) FROM stage").fetchall()[0]
    derive_ids(con, fmt)
    if ids_with_controls(con):
        return None
    con.execute("CREATE TEMP TABLE bad (ord BIGINT, raw VARCHAR, reason VARCHAR)")
    if n_bad:  # numbering needs an ordered read: only for files that have rejected rows
        report(0.3, "numbering rejected rows")
        if not _number_rejected(con, path, read.sql, n_bad, total, digest):
            return None
    return Staged(total - n_bad, total, 0, "rid", constants, read.columns)


def stage_lines(con, path: Path, fmt: str, mapping: dict | None, source: str | None) -> Staged:
    """``stage`` read line by line: the file's rows classified, with the hash of the duplicate key."""
    read = readers.event_sql(con, path, fmt, mapping, source)
    try:
        con.execute(
            f"CREATE TEMP TABLE stage AS SELECT *, CASE WHEN reason IS NULL THEN hash({KEY}) END AS h "
            f"FROM ({read.sql})"
        )
    except duckdb.Error as exc:  # the reader's own complaint, with the file named
        first = str(exc).strip().splitlines()[0]
        raise InputError(
            f"could not be read as {fmt}: {first}", file=str(path), fix="check the format and the header"
        ) from exc
    skipped = _line_rejects(con)
    total, n_bad, n_rows = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL), count(DISTINCT ord) FROM stage"
    ).fetchall()[0]
    derive_ids(con, fmt)
    return Staged(total - n_bad, n_rows, skipped, "ord, k", {}, read.columns)


def derive_ids(con, fmt: str) -> None:
    """``item_attrs``: the items the good rows name (REES46: with category, brand and the latest price);
    ``user_first``: each user's first event. Duplicates may count: each repeats the (user, ts) of a row
    loaded now or stored before, so the minimum is the same."""
    if fmt == "rees46":
        con.execute("""CREATE OR REPLACE TEMP TABLE item_attrs AS
            SELECT item_id, any_value(category) AS category, any_value(brand) AS brand,
                   arg_max(price, ts) FILTER (WHERE price IS NOT NULL) AS price
            FROM stage WHERE reason IS NULL GROUP BY item_id""")
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE item_attrs AS SELECT DISTINCT item_id FROM stage WHERE reason IS NULL"
        )
    # per (user, session) first, then per user: one pass over ``stage`` gives both the users' first events
    # and the distinct session ids that ``ids_with_controls`` checks
    con.execute("""CREATE OR REPLACE TEMP TABLE user_sessions AS
        SELECT user_id, session_id, min(ts) AS first_seen FROM stage WHERE h IS NOT NULL
        GROUP BY user_id, session_id""")
    con.execute("""CREATE OR REPLACE TEMP TABLE user_first AS
        SELECT user_id, min(first_seen) AS first_seen FROM user_sessions GROUP BY user_id""")


def ids_with_controls(con) -> bool:
    """Whether a good row's user, item or session id holds a control character, checked on the distinct ids
    (``item_attrs``, ``user_first`` and ``user_sessions`` are needed anyway)."""
    found = con.execute(f"""SELECT
        (SELECT count(*) FROM item_attrs WHERE regexp_matches(item_id, {readers.CONTROL}))
      + (SELECT count(*) FROM user_first WHERE regexp_matches(user_id, {readers.CONTROL}))
      + (SELECT count(*) FROM (SELECT DISTINCT session_id FROM user_sessions)
         WHERE regexp_matches(session_id, {readers.CONTROL}))""").fetchall()
    return bool(found[0][0])


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
        FROM {lines_reader(path)} l JOIN bad_text b ON l.line = b.raw""")
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
        SELECT ord, line FROM {lines_reader(path)} WHERE ord IN (SELECT ord FROM bad)) l
        WHERE bad.ord = l.ord""")
    return True
