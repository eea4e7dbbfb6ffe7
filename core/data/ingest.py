"""Load event logs and catalogs into the store, in one transaction each, streaming through DuckDB.

Every row is either loaded, counted as a duplicate or rejected with its line number, raw
text and a reason a person can act on: ``rows_read = loaded + rejected + duplicates``.
A whole-file problem raises ``InputError`` and writes nothing (no events, no ingests row).

The pipeline is set-based SQL (see ``core.data.formats``): read + split + classify into a temp
table ``stage``; find duplicates (inside the file and against stored events) by a 64-bit hash of
the key first, then exact comparison within hash collisions only; insert the rest; derive items
and users; record rejects and the ingests row.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from core import store
from core.data import formats
from core.data.formats import detect_format, lit
from core.errors import InputError

Progress = Callable[[float, str], None]
KEY = "ts, user_id, item_id, event_type, session_id"
TEMP_TABLES = ("stage", "dups", "line_map", formats.REJECTS_TABLE, formats.REJECTS_SCAN)


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
    steps: dict = field(default_factory=dict)  # seconds per step (read, duplicates, events, items, …)

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


class _Digest(threading.Thread):
    """sha256 and physical line count of the file, computed alongside the load (hashlib releases the GIL)."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.value, self.lines = path, None, None
        self.start()

    def run(self) -> None:
        digest, lines, last = hashlib.sha256(), 0, b"\n"
        try:
            with self.path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    digest.update(block)
                    lines += block.count(b"\n")
                    last = block[-1:]
        except OSError:
            return
        self.value, self.lines = digest.hexdigest(), lines + (last != b"\n")

    def result(self) -> str | None:
        self.join()
        return self.value


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


def ingest_events(path, fmt: str | None = None, *, db_path=None, mapping: dict | None = None,
                  progress: Progress | None = None, source: str | None = None) -> IngestResult:
    """Load one event log. ``fmt`` None = detect from the header; ``mapping``: canonical → source column
    (native files); ``source``: label stored in ``events.source`` (default: the file's own or the format)."""
    path = Path(path)
    started = time.perf_counter()
    report = progress or (lambda fraction, message="": None)
    _check_file(path)
    if fmt is not None and fmt not in formats.FORMATS:
        raise InputError(f"unknown format '{fmt}'", file=str(path), fix="use one of " + ", ".join(formats.FORMATS))
    report(0.0, "detecting the format")
    fmt = fmt or ("native" if mapping else detect_format(path))
    digest = _Digest(path)
    with store.connect(db_path) as con:
        con.execute("SET TimeZone = 'UTC'")
        _drop_temp(con)
        report(0.05, f"reading {fmt}")
        steps = _Steps()
        n_skipped = _read(con, path, fmt, mapping, source, digest, report)  # temp tables only
        steps("read")
        total, n_bad, n_rows = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL), count(DISTINCT ord) FROM stage"
        ).fetchall()[0]
        if n_rows + n_skipped == 0:
            raise InputError("has a header but no rows", file=str(path), fix="export the log again with its rows")
        con.execute("BEGIN TRANSACTION")
        try:
            result = _load(con, path, fmt, digest, total - n_bad, n_skipped, started, report, steps)
            con.execute("COMMIT")
            steps("commit")
            result.steps = steps.seconds
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            _drop_temp(con)
    result.seconds = time.perf_counter() - started
    report(1.0, "done")
    return result


class _Steps:
    """Wall time per step, for the bench and the log."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.last, 3)
        self.last = now


def _read(con, path: Path, fmt: str, mapping, source, digest: _Digest, report: Progress) -> int:
    """Stage the file (see ``_stage``); returns how many lines the reader could not decode.

    CSV goes through DuckDB's own parser first; if any line did not become exactly one row (blank lines,
    quoted line breaks, malformed or undecodable lines, mixed line ends), it is read again line by line so
    that every line number is exact. Runs before the transaction: it only creates temp tables."""
    fast = fmt in ("native", "rees46", "retailrocket") and formats.file_kind(path) == "text" \
        and path.suffix != ".gz"
    if fast:
        try:
            _stage(con, path, fmt, mapping, source, True)
            digest.join()
            rows, refused = con.execute(
                f"SELECT (SELECT count(*) FROM stage), (SELECT count(*) FROM {formats.REJECTS_TABLE})"
            ).fetchall()[0]
            fast = not refused and digest.lines is not None and rows + 1 == digest.lines
        except InputError:
            fast = False
        if fast and con.execute("SELECT count(*) FROM stage WHERE reason IS NOT NULL").fetchall()[0][0]:
            con.execute(f"""UPDATE stage SET raw = l.line FROM (
                SELECT ord, line FROM {formats.lines_reader(path)}
                WHERE ord IN (SELECT ord FROM stage WHERE reason IS NOT NULL)) l
                WHERE stage.ord = l.ord AND stage.reason IS NOT NULL""")
        elif not fast:
            _drop_temp(con)
            report(0.3, "reading line by line (the file has irregular lines)")
            _stage(con, path, fmt, mapping, source, False)
    else:
        _stage(con, path, fmt, mapping, source, False)
    return _line_rejects(con)


def _load(con, path: Path, fmt: str, digest: _Digest, good: int, n_skipped: int, started: float,
          report: Progress, steps) -> IngestResult:
    """The writes, inside the caller's transaction: events, items, users, rejects, the ingests row."""
    report(0.6, "finding duplicates")
    _find_duplicates(con)
    n_dups = con.execute("SELECT count(*) FROM dups").fetchall()[0][0]
    steps("duplicates")
    ingest_id = con.execute("SELECT nextval('ingest_seq')").fetchall()[0][0]
    report(0.7, "loading events")
    con.execute("SET preserve_insertion_order = false")  # the order of stored events does not matter
    anti = "AND NOT EXISTS (SELECT 1 FROM dups d WHERE d.ord = s.ord AND d.k = s.k)" if n_dups else ""
    con.execute(f"""INSERT INTO events
        SELECT ts, user_id, item_id, event_type, session_id, dwell_ms, position, page, price, rating, source, ?
        FROM stage s WHERE reason IS NULL {anti}""", [ingest_id])
    steps("events")
    report(0.85, "updating items and users")
    _upsert_items_from_events(con, fmt)
    steps("items")
    _upsert_users(con, ingest_id)
    steps("users")
    # a sequence line yields several events: one bad line is one rejected row
    con.execute(f"""INSERT INTO rejects
        SELECT ?, {_line_of(n_skipped)}, any_value(raw), any_value(reason) FROM stage s
        WHERE reason IS NOT NULL GROUP BY s.ord""", [ingest_id])
    con.execute("INSERT INTO rejects SELECT ?, line, raw, reason FROM line_map", [ingest_id])
    rejected = con.execute("SELECT count(*) FROM rejects WHERE ingest_id = ?", [ingest_id]).fetchall()[0][0]
    loaded = good - n_dups
    result = IngestResult(ingest_id, str(path), fmt, loaded + rejected + n_dups, loaded, rejected, n_dups,
                          time.perf_counter() - started)
    con.execute(
        """INSERT INTO ingests VALUES (?, ?, ?, ?, 'events', ?, ?, ?, ?, now() - to_microseconds(?), now(),
           'done', NULL)""",
        [ingest_id, str(path), digest.result(), fmt, result.rows_read, loaded, rejected, n_dups,
         int(result.seconds * 1e6)],
    )
    return result


def _stage(con, path: Path, fmt: str, mapping: dict | None, source: str | None, fast: bool) -> None:
    """Temp table ``stage``: the file's rows classified, with the hash of the duplicate key."""
    sql, _ = formats.event_sql(con, path, fmt, mapping, source, fast=fast)
    try:
        con.execute(f"CREATE TEMP TABLE stage AS SELECT *, CASE WHEN reason IS NULL THEN hash({KEY}) END AS h "
                    f"FROM ({sql})")
    except Exception as exc:  # the reader's own complaint, with the file named
        raise InputError(f"could not be read as {fmt}: {exc}", file=str(path),
                         fix="check the format and the header") from exc


def _find_duplicates(con) -> None:
    """``dups(ord, k)``: good rows equal on (ts, user, item, type, session — NULL equals NULL) to a stored
    event or to an earlier row of the file. Hash first, exact comparison only among hash matches."""
    con.execute("CREATE TEMP TABLE dups (ord BIGINT, k BIGINT)")
    con.execute(f"""INSERT INTO dups
        SELECT ord, k FROM (
            SELECT ord, k, row_number() OVER (PARTITION BY {KEY} ORDER BY ord, k) AS rn
            FROM stage WHERE h IN (SELECT h FROM stage WHERE h IS NOT NULL GROUP BY h HAVING count(*) > 1))
        WHERE rn > 1""")
    has_events = con.execute("SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)").fetchall()[0][0]
    if not has_events:
        return
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM stage WHERE reason IS NULL").fetchall()[0]
    if lo is None:
        return
    con.execute(f"""INSERT INTO dups
        SELECT s.ord, s.k FROM stage s
        SEMI JOIN (SELECT {KEY} FROM events WHERE ts BETWEEN ? AND ?) e
          ON s.ts = e.ts AND s.user_id = e.user_id AND s.item_id = e.item_id AND s.event_type = e.event_type
         AND s.session_id IS NOT DISTINCT FROM e.session_id
        WHERE s.reason IS NULL
        EXCEPT SELECT ord, k FROM dups""", [lo, hi])


def _upsert_items_from_events(con, fmt: str) -> None:
    """Items named by the file's good rows (REES46: category, brand and the latest price from the rows; a
    catalog file's values are kept unless empty); unknown items are created with unknown attributes."""
    if fmt == "rees46":
        con.execute(f"""INSERT INTO items (item_id, category, brand, price)
            SELECT s.item_id, max(s.category), max(s.brand),  -- constant per product in REES46 exports
                   arg_max(s.price, s.ts) FILTER (WHERE s.price IS NOT NULL)
            FROM stage s WHERE s.reason IS NULL GROUP BY s.item_id
            ON CONFLICT (item_id) DO UPDATE SET
              category = CASE WHEN items.from_catalog AND items.category IS NOT NULL THEN items.category
                              ELSE coalesce(excluded.category, items.category) END,
              brand = CASE WHEN items.from_catalog AND items.brand IS NOT NULL THEN items.brand
                           ELSE coalesce(excluded.brand, items.brand) END,
              price = CASE WHEN items.from_catalog AND items.price IS NOT NULL THEN items.price
                           ELSE coalesce(excluded.price, items.price) END""")
    else:
        con.execute("""INSERT INTO items (item_id) SELECT DISTINCT item_id FROM stage WHERE reason IS NULL
                       ON CONFLICT (item_id) DO NOTHING""")


def _upsert_users(con, ingest_id: int) -> None:
    """Users of the new events; first_seen = their earliest event."""
    con.execute("""INSERT INTO users (user_id, first_seen)
                    SELECT user_id, min(ts) FROM events WHERE ingest_id = ? GROUP BY user_id
                    ON CONFLICT (user_id) DO UPDATE
                    SET first_seen = least(coalesce(users.first_seen, excluded.first_seen), excluded.first_seen)""",
                [ingest_id])


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
