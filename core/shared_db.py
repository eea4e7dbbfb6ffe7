"""One locked-down DuckDB instance per database file in this process, shared by the threads working on it.

DuckDB keeps one database instance per file in a process, and its connections are not thread-safe: the
documented model is one connection with a cursor per thread. Opening a connection from each thread for
each unit of work raced on DuckDB's instance cache ("Unique file handle conflict … already attached").
So ``SharedDatabase`` holds one base connection while any thread is working, hands each unit of work its
own cursor, counts them in and out, and closes the base when the last one leaves: between units of work
no process holds the file, so the CLI, training jobs and the serving API still get it.

Every instance is locked down as it opens, before any cursor exists (``lock_down``): external access only
to the folders the product needs (``allowed_directories``) plus the files a trusted caller named
(``allowed_paths``: the CLI's ``ingest FILE``), then ``lock_configuration`` so that no statement, not
even an injected one, can widen it again. The settings a unit of work used to change per statement
(time zone, insertion order) are fixed here for the instance's life, as the lock requires.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from core.errors import StoreBusyError, storage_error

log = logging.getLogger(__name__)
Notify = Callable[[str], None] | None


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def open_waiting(path: Path, read_only: bool, wait_s: float, on_wait: Notify) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, waiting with backoff (and saying so after 2 s) while another process holds the
    file; a clear error after ``wait_s`` or when the folder cannot hold a database."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise (storage_error(exc, path) or exc) from exc
    start = time.monotonic()
    delay, told = 0.05, False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc):
                raise (storage_error(exc, path) or exc) from exc
            waited = time.monotonic() - start
            if waited > wait_s:
                raise StoreBusyError(
                    f"{path}: another process has held the database for {waited:.0f} s "
                    "(an ingest or training job?) — try again when it finishes"
                ) from exc
            if waited > 2 and not told:
                message = f"waiting for {path.name}: another process is using it"
                log.warning(message)
                if on_wait:
                    on_wait(message)
                told = True
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 1.6, 1.0)


def lock_down(con: duckdb.DuckDBPyConnection, directories: list[str], paths: list[str]) -> None:
    """Fix the instance's settings, limit file access to ``directories`` and ``paths``, and lock it all.
    An instance that is already locked (another connection of this process locked it) is left as it is."""
    if con.execute("SELECT current_setting('lock_configuration')").fetchall()[0][0]:
        return
    con.execute("SET GLOBAL TimeZone = 'UTC'")  # timestamps are stored as naive UTC
    # (enable_progress_bar is per connection and off in the Python client: progress is ours to report)
    # stored order carries no meaning and every reader that needs one says ORDER BY: bulk inserts write
    # in parallel (about 1 s of a 5M-row ingest, docs/BENCHMARKS.md)
    con.execute("SET GLOBAL preserve_insertion_order = false")
    con.execute("SET allowed_directories = ?", [directories])
    con.execute("SET allowed_paths = ?", [paths])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def as_directory(path: Path) -> str:
    """A folder as DuckDB's ``allowed_directories`` wants it: resolved, with a trailing slash (entries are
    prefixes: without it, ``/data`` would also allow ``/data2``)."""
    return str(path.resolve()).rstrip("/") + "/"


def covered(path: str, directories: list[str], paths: frozenset[str]) -> bool:
    return path in paths or any(path.startswith(d) for d in directories)


class SharedDatabase:
    """The shared instance of one database file: ``enter`` gives a unit of work its cursor, ``leave`` takes
    it back and closes the instance after the last one. An instance opened read-only, or without a file a
    unit of work must read, is drained (newcomers wait, the working ones finish) and opened again."""

    def __init__(self, path: Path, migrate: Callable[[duckdb.DuckDBPyConnection], None]):
        self.path, self.migrate = path, migrate
        self.cond = threading.Condition()
        self.con: duckdb.DuckDBPyConnection | None = None
        self.users = 0
        self.read_only = False
        self.paths: frozenset[str] = frozenset()
        self.directories: list[str] = []
        self.draining = False
        self.holders: dict[int, int] = {}  # thread id → its units of work in progress

    def enter(
        self, read_only: bool, read_paths: list[str], directories: list[str], wait_s: float, on_wait: Notify
    ) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + wait_s
        with self.cond:
            self._wait(lambda: not self.draining, deadline)
            if self.con is not None and not self._fits(read_only, read_paths, directories):
                if self.holders.get(threading.get_ident()):
                    raise StoreBusyError(  # it would wait for itself
                        f"{self.path.name}: this thread still has the database open and cannot reopen it "
                        "to read another file — finish that unit of work first"
                    )
                self._drain(deadline)
            if self.con is None:
                extra = [p for p in read_paths if not covered(p, directories, frozenset())]
                self._open(read_only, extra, directories, wait_s, on_wait)
            self.users += 1
            me = threading.get_ident()
            self.holders[me] = self.holders.get(me, 0) + 1
            try:
                return self.con.cursor()
            except BaseException:
                self._leave_locked()
                raise

    def leave(self, cursor: duckdb.DuckDBPyConnection) -> None:
        with self.cond:
            try:
                cursor.close()
            finally:
                self._leave_locked()

    def _leave_locked(self) -> None:
        me = threading.get_ident()
        left = self.holders.get(me, 0) - 1  # (0 if another thread closes this one's unit of work)
        if left > 0:
            self.holders[me] = left
        else:
            self.holders.pop(me, None)
        self.users -= 1
        if self.users == 0:
            self._close()

    def _fits(self, read_only: bool, read_paths: list[str], directories: list[str]) -> bool:
        if self.read_only and not read_only:
            return False
        if directories != self.directories:
            return False
        return all(covered(p, self.directories, self.paths) for p in read_paths)

    def _wait(self, ready: Callable[[], bool], deadline: float) -> None:
        if not self.cond.wait_for(ready, timeout=max(0.0, deadline - time.monotonic())):
            raise StoreBusyError(
                f"{self.path.name}: other sessions of this app kept the database busy — try again in a moment"
            )

    def _drain(self, deadline: float) -> None:
        """Let the working units finish (newcomers wait meanwhile), then close the instance."""
        self.draining = True
        try:
            self._wait(lambda: self.users == 0, deadline)
        finally:
            self.draining = False
            self.cond.notify_all()
        self._close()

    def _open(
        self, read_only: bool, extra: list[str], directories: list[str], wait_s: float, on_wait: Notify
    ) -> None:
        con = open_waiting(self.path, read_only, wait_s, on_wait)
        try:
            lock_down(con, directories, extra)
            if not read_only:
                self.migrate(con)
        except BaseException:
            con.close()
            raise
        self.con, self.read_only = con, read_only
        self.paths, self.directories = frozenset(extra), list(directories)

    def _close(self) -> None:
        if self.con is not None:
            try:
                self.con.close()
            finally:
                self.con = None
                self.cond.notify_all()


_shared: dict[str, SharedDatabase] = {}
_shared_lock = threading.Lock()


def holds_cursor(path: Path) -> bool:
    """Whether the calling thread has a unit of work open on this database.

    Read without the instance's condition: a thread opening the instance holds it through the migrations
    (seconds on a new file), and a writer asking this must reach its write lock, and say that it waits,
    meanwhile. Only the calling thread adds or removes its own entry, so the plain read is exact."""
    database = _shared.get(str(path))
    return database is not None and database.holders.get(threading.get_ident(), 0) > 0


def shared(path: Path, migrate: Callable[[duckdb.DuckDBPyConnection], None]) -> SharedDatabase:
    key = str(path)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = SharedDatabase(path, migrate)
        return _shared[key]
