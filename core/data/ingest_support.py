"""Bookkeeping shared by event and catalog loads: the result of a load, file checks, the file's
sha256 and line count (computed alongside the load), lines the line reader refused, step timings, the
items/users merge, the early flush of written blocks, and the ingest history."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from core import store
from core.data import formats
from core.errors import InputError


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
    notes: list[str] = field(default_factory=list)  # e.g. the columns that were ignored
    forgotten: int = 0  # events of forgotten shoppers left out (core.data.forgotten)

    def summary(self) -> str:
        text = (
            f"{Path(self.file).name} ({self.format} {self.kind}): read {self.rows_read:,} rows → loaded "
            f"{self.loaded:,}, rejected {self.rejected:,}, duplicates {self.duplicates:,} "
            f"in {self.seconds:.1f} s (ingest #{self.ingest_id})"
        )
        return "; ".join([text, *self.notes])


GLOB_CHARACTERS = "*?[]{}"  # DuckDB reads a path holding one of these as a pattern of several files


def _check_file(path: Path) -> Path:
    """The file, resolved (symlinks followed), if it is one we can read: else a clear ``InputError``."""
    if "\x00" in str(path):
        raise InputError("the path holds a NUL character", file=repr(str(path)), fix="check the path")
    try:
        resolved = path.resolve()
        if not resolved.exists():
            raise InputError("no such file", file=str(path), fix="check the path")
        if resolved.is_dir():
            raise InputError("is a folder, not a file", file=str(path), fix="point at one log file")
        if not resolved.is_file():
            raise InputError(
                "is not a regular file (a device, a pipe or a socket)",
                file=str(path),
                fix="point at a log file",
            )
        with resolved.open("rb") as f:
            f.read(1)
    except OSError as exc:
        raise InputError(
            f"cannot be read ({exc.strerror or exc})", file=str(path), fix="check its permissions"
        ) from exc
    if resolved.stat().st_size == 0:
        raise InputError("the file is empty", file=str(path), fix="export the log again; it has no rows")
    if any(c in str(resolved) for c in GLOB_CHARACTERS):
        raise InputError(
            f"its path holds one of {GLOB_CHARACTERS}, which the database reads as a pattern of file names",
            file=str(path),
            fix="rename the file (or its folder) without those characters",
        )
    return resolved


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


HASH_LIMIT = 256 << 20  # bigger files: no sha256 (it would compete with DuckDB for the CPU), NULL stored


class _Digest(threading.Thread):
    """sha256 and physical line count of a file up to ``HASH_LIMIT``, computed alongside the load (hashlib and
    bytes.count release the GIL or are memchr-fast). Bigger files get no sha256, and their lines are counted
    only if asked (``line_count``) — on 2 cores a second reader of a large file slows DuckDB's parser."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.value, self.lines = path, None, None
        self.hashing = path.stat().st_size <= HASH_LIMIT
        if self.hashing:
            self.start()

    def run(self) -> None:
        self.value, self.lines = self._scan(hashlib.sha256() if self.hashing else None)

    def _scan(self, digest) -> tuple[str | None, int | None]:
        lines, last = 0, b"\n"
        try:
            with self.path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    if digest:
                        digest.update(block)
                    lines += block.count(b"\n")
                    last = block[-1:]
        except OSError:
            return None, None
        return (digest.hexdigest() if digest else None), lines + (last != b"\n")

    def line_count(self) -> int | None:
        if self.hashing:
            self.join()
        elif self.lines is None:
            self.lines = self._scan(None)[1]
        return self.lines

    def result(self) -> str | None:
        if self.hashing:
            self.join()
        return self.value


class _Steps:
    """Wall time per step, for the bench and the log."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.last, 3)
        self.last = now


def merge(
    con,
    table: str,
    key: str,
    source: str,
    columns: list[str],
    update: str | None,
    insert: dict[str, str] | None = None,
) -> None:
    """Upsert for ``items`` and ``users`` (which have no PRIMARY KEY index, see migration 4): rows of
    ``source`` (a relation with ``columns``, at most one row per ``key``) whose key is stored update that row
    with ``update`` (a SET list; ``t`` is the stored row, ``s`` the new one; None: left as they are), the
    others are inserted (``insert``: column → the SQL inserted instead of the column itself). Callers hold
    the database's write lock (``store.writing``): two merges at once would both insert a new id."""
    cols = ", ".join(columns)
    values = ", ".join((insert or {}).get(c, c) for c in columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE merge_src AS SELECT {cols} FROM {source}")
    if update:
        con.execute(f"UPDATE {table} AS t SET {update} FROM merge_src s WHERE t.{key} = s.{key}")
    con.execute(
        f"INSERT INTO {table} ({cols}) SELECT {values} FROM merge_src WHERE {key} NOT IN "
        f"(SELECT {key} FROM {table})"
    )
    con.execute("DROP TABLE merge_src")


def flush_in_background(con) -> threading.Thread:
    """Start writing the database file's dirty pages to disk while the items and users are computed, so
    that COMMIT, which must wait for them, finds little left to flush. Only the timing changes: durability
    is still COMMIT's own fsync. The fsync goes through DuckDB's own descriptor of the file (found in
    /proc/self/fd; elsewhere nothing is done): opening and closing a second descriptor would release
    DuckDB's POSIX lock on the file and let another process open it mid-load."""
    rows = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    fd = open_descriptor(rows[0][0]) if rows and rows[0][0] else None

    def flush() -> None:
        if fd is not None:
            try:
                os.fsync(fd)
            except OSError:  # not ours to fail on: COMMIT syncs anyway
                pass

    thread = threading.Thread(target=flush, daemon=True)
    thread.start()
    return thread


def open_descriptor(path: str) -> int | None:
    """The descriptor this process already holds on ``path`` (Linux), or None."""
    target = os.path.realpath(path)
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                return int(name)
        except OSError:
            continue
    return None


def audit_load(con, actor, action: str, path: Path, result: IngestResult, **detail) -> IngestResult:
    """The audit row of a load, in the load's own transaction."""
    after = {"ingest_id": result.ingest_id, **detail, "loaded": result.loaded, "rejected": result.rejected}
    store.audit(con, actor, action, path.name, after)
    return result


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


def _line_rejects(con) -> int:
    """Lines DuckDB's line reader refused (invalid UTF-8, …) into temp table ``line_map(line, raw, reason)``;
    returns how many."""
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
    """SQL for the physical line of a staged row ``s``: its ordinal, shifted past the lines the reader
    skipped before it (skipped line i-th in order has ``line - i`` lines read before it)."""
    if not n_skipped:
        return "s.ord"
    return """s.ord + (SELECT count(*) FROM (SELECT line - row_number() OVER (ORDER BY line) AS before
                                            FROM line_map) m WHERE m.before < s.ord)"""
