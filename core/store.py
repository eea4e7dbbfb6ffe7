"""The DuckDB store: one file, shared by the threads of a process while they work, migrated on open.

DuckDB 2.0 notes: ``con.sql(sql, params=[...]).pl()`` gives a polars frame;
``con.execute(sql, [...]).fetchall()`` for tuples. A relation keeps no result and has no
``fetchone``; a ``con.execute`` result must be fetched before ``con.sql`` runs on the
same connection.

DuckDB lets one *process* hold a database file, and the app, the CLI jobs and the
serving API are separate processes. So nobody keeps the file open between units of work:
``connect()`` gives a unit of work a cursor on the process's shared instance
(``core.shared_db``: locked down, opened by the first unit, closed after the last); while
another process holds the file we wait with backoff and say so (via ``on_wait``).
Writers also take the database's in-process write lock (``writing``, part of
``transaction``), since every browser session is a thread of one process.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb
import polars as pl

from core.config import settings
from core.errors import StoreBusyError, storage_error
from core.migrations import migrate
from core.release.chain import append
from core.release.roles import Account
from core.shared_db import as_directory, holds_cursor, shared

log = logging.getLogger(__name__)
T = TypeVar("T")

_migrated: set[str] = set()  # databases migrated by this process (a read-only unit of work needs it)
_migrate_lock = threading.Lock()


def _migrate_on_open(con: duckdb.DuckDBPyConnection, key: str) -> None:
    """Migrations as the shared instance opens (under its lock: one thread migrates, the others wait).
    Checked on every open, not once per process: the file may have been replaced in between."""
    migrate(con)
    with _migrate_lock:
        _migrated.add(key)


def _key(path: Path) -> str:
    """The database's identity: its resolved path (cached: every unit of work asks)."""
    return _resolved(str(path), os.getcwd())


@functools.lru_cache(maxsize=256)
def _resolved(path: str, _cwd: str) -> str:
    return str(Path(path).resolve())


def allowed_directories() -> list[str]:
    """The folders DuckDB may read and write files in: where the product loads files from — the import
    folders (HS_IMPORT_DIRS), the uploads and the demo shop's files. Not the data folder as a whole: the
    database, its WAL and spill folder are DuckDB's own (they need no permission), model runs are written
    by torch, release artifacts and the audit's files by polars, and the audit's held-out copy is a
    database of its own. A feature that reads or writes files through DuckDB adds its folder here
    (``Settings`` names it)."""
    cfg = settings()
    folders = [*cfg.import_dirs, cfg.uploads_dir, cfg.data_dir / "demo"]
    return list(_directories(tuple(str(d) for d in folders), os.getcwd()))


@functools.lru_cache(maxsize=64)
def _directories(folders: tuple[str, ...], _cwd: str) -> tuple[str, ...]:
    return tuple(sorted({as_directory(Path(d)) for d in folders}))


@contextmanager
def connect(
    db_path: str | Path | None = None,
    *,
    read_only: bool = False,
    on_wait: Callable[[str], None] | None = None,
    read_paths: list[str | Path] | tuple = (),
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on the process's shared, locked-down instance of the database, for one unit of work.

    The instance opens (migrated) with the first unit of work and closes after the last, so no process
    keeps the file between units of work. ``read_paths``: files outside the data and import folders that
    this unit of work reads (the CLI's ``ingest FILE``); the caller vouches for them — the app only passes
    files it confined to the import folders (``core.data.imports``). ``read_only`` is for other tools: the
    instance is shared, so the app opens read-write throughout."""
    cfg = settings()
    path = Path(db_path) if db_path else Path(cfg.db_path)
    if read_only and (not path.exists() or _key(path) not in _migrated):
        read_only = False  # nothing to read yet, or a file from an older version: create / upgrade it
    key = _key(path)
    database = shared(Path(key), functools.partial(_migrate_on_open, key=key))
    paths = [str(Path(p).resolve()) for p in read_paths]
    cursor = database.enter(read_only, paths, allowed_directories(), cfg.lock_wait_s, on_wait)
    try:
        yield cursor
    except duckdb.Error as exc:
        translated = storage_error(exc, path)
        if translated is None:
            raise
        raise translated from exc
    finally:
        database.leave(cursor)


_write_locks: dict[str, threading.RLock] = {}
_write_locks_lock = threading.Lock()


class _WritesHeld(threading.local):
    """Per thread: the databases whose write lock it holds, with its re-entries counted."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}


_writes_held = _WritesHeld()


@contextmanager
def writing(
    db_path: str | Path | None = None, *, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """The per-database write lock of this process, held for a whole write: an ingest (its duplicate check
    included), a rule-set save, a model activation, a release. DuckDB's file lock only keeps other
    processes out; inside one process every browser session is a thread, and two loads of one file would
    both commit. Re-entrant; a writer that has to wait says so through ``on_wait``.

    Lock order (docs/ARCHITECTURE.md): the publish file lock, then this lock, then a cursor (``connect``).
    A thread that holds a cursor and asks for this lock is refused at once (``StoreBusyError``): the
    lock's holder may be waiting for every cursor to close (an instance reopened for a file the CLI
    names), so waiting here could wait for ever."""
    key = _key(Path(db_path) if db_path else Path(settings().db_path))
    held = _writes_held.keys
    if not held.get(key) and holds_cursor(Path(key)):
        raise StoreBusyError(
            f"{Path(key).name}: this thread still has the database open and cannot wait for its write lock — "
            "take the write lock (store.writing / store.transaction) before the cursor (store.connect); "
            "see the lock order in docs/ARCHITECTURE.md"
        )
    with _write_locks_lock:
        lock = _write_locks.setdefault(key, threading.RLock())
    if not lock.acquire(timeout=0.2):
        message = f"waiting for another write to {Path(key).name} in this app to finish (a load or a save)"
        log.info(message)
        if on_wait:
            on_wait(message)
        lock.acquire()
    held[key] = held.get(key, 0) + 1
    try:
        yield
    finally:
        held[key] -= 1
        lock.release()


@contextmanager
def transaction(db_path: str | Path | None = None, **kw) -> Iterator[duckdb.DuckDBPyConnection]:
    """A unit of work that commits as a whole or not at all, under the database's write lock."""
    with writing(db_path, on_wait=kw.get("on_wait")), connect(db_path, **kw) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            rollback(con)
            raise
        con.execute("COMMIT")


def committed(con: duckdb.DuckDBPyConnection, work: Callable[[], T]) -> T:
    """``work()`` in one transaction on a cursor already open (a load writes there after staging outside
    it): COMMIT, or ROLLBACK and the error that made it necessary."""
    con.execute("BEGIN TRANSACTION")
    try:
        result = work()
    except BaseException:
        rollback(con)
        raise
    con.execute("COMMIT")
    return result


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK that never hides the error that made it necessary (after a failed COMMIT, or once the disk
    is full, DuckDB may refuse it too)."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as exc:
        log.warning("rollback failed after an error: %s", exc)


def query(
    sql: str, params: list | tuple | dict | None = None, db_path: str | Path | None = None
) -> pl.DataFrame:
    """Run one parameterised read and return it as a polars frame."""
    with connect(db_path) as con:
        return con.sql(sql, params=params or None).pl()


def scalar(sql: str, params: list | tuple | None = None, db_path: str | Path | None = None):
    with connect(db_path) as con:
        rows = con.execute(sql, params or []).fetchall()
        return rows[0][0] if rows else None


def audit(
    con: duckdb.DuckDBPyConnection, actor: Account | str, action: str, target: str, detail: dict | None = None
) -> None:
    """Append one row to the audit log inside the caller's transaction (kept for older callers: the
    one writer is ``core.release.chain.append``, which chains each row to the one before)."""
    append(con, actor, action, target, after=detail)
