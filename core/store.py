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

import duckdb
import polars as pl

from core.config import settings
from core.errors import storage_error
from core.shared_db import as_directory, shared

log = logging.getLogger(__name__)

# Numbered migrations: index i+1 is schema version i+1. Append only; never edit a landed one.
MIGRATIONS: list[str] = [
    # 1: events, catalog, ingest bookkeeping
    """
    CREATE SEQUENCE IF NOT EXISTS ingest_seq START 1;
    CREATE TABLE events (
        ts TIMESTAMP NOT NULL,
        user_id VARCHAR NOT NULL,
        item_id VARCHAR NOT NULL,
        event_type VARCHAR NOT NULL,
        session_id VARCHAR,
        dwell_ms BIGINT,
        position INTEGER,
        page VARCHAR,
        price DOUBLE,
        rating DOUBLE,
        source VARCHAR,
        ingest_id INTEGER
    );
    CREATE TABLE items (
        item_id VARCHAR PRIMARY KEY,
        title VARCHAR,
        category VARCHAR,
        brand VARCHAR,
        seller_id VARCHAR,
        price DOUBLE,
        image_url VARCHAR,
        created_at TIMESTAMP,
        in_stock BOOLEAN DEFAULT TRUE,
        from_catalog BOOLEAN DEFAULT FALSE
    );
    CREATE TABLE sellers (
        seller_id VARCHAR PRIMARY KEY,
        name VARCHAR,
        tier VARCHAR,
        onboarded_at TIMESTAMP
    );
    CREATE TABLE promotions (
        promotion_id VARCHAR PRIMARY KEY,
        item_id VARCHAR,
        category VARCHAR,
        discount DOUBLE,
        starts_at TIMESTAMP,
        ends_at TIMESTAMP
    );
    CREATE TABLE users (
        user_id VARCHAR PRIMARY KEY,
        first_seen TIMESTAMP,
        region VARCHAR,
        device VARCHAR,
        segment VARCHAR
    );
    CREATE TABLE ingests (
        ingest_id INTEGER PRIMARY KEY,
        file VARCHAR,
        sha256 VARCHAR,
        format VARCHAR,
        kind VARCHAR,
        rows_read BIGINT,
        loaded BIGINT,
        rejected BIGINT,
        duplicates BIGINT,
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        status VARCHAR,
        message VARCHAR
    );
    CREATE TABLE rejects (
        ingest_id INTEGER,
        line_no BIGINT,
        raw VARCHAR,
        reason VARCHAR
    );
    """,
    # 2: model registry
    """
    CREATE TABLE model_runs (
        run_id VARCHAR PRIMARY KEY,
        created_at TIMESTAMP,
        kind VARCHAR,
        stage VARCHAR,
        parent_run_id VARCHAR,
        status VARCHAR,
        path VARCHAR,
        config JSON,
        metrics JSON,
        data_snapshot JSON,
        train_seconds DOUBLE,
        device VARCHAR,
        active BOOLEAN DEFAULT FALSE,
        message VARCHAR
    );
    """,
    # 3: rule sets (optimistic versions), releases, append-only audit log
    """
    CREATE SEQUENCE IF NOT EXISTS audit_seq START 1;
    CREATE TABLE rule_sets (
        rule_set_id VARCHAR NOT NULL,
        version INTEGER NOT NULL,
        name VARCHAR,
        rules JSON,
        saved_by VARCHAR,
        saved_at TIMESTAMP,
        note VARCHAR,
        PRIMARY KEY (rule_set_id, version)
    );
    CREATE TABLE releases (
        release_id INTEGER PRIMARY KEY,
        rule_set_id VARCHAR,
        rule_set_version INTEGER,
        run_id VARCHAR,
        published_by VARCHAR,
        published_at TIMESTAMP,
        reason VARCHAR,
        artifact_path VARCHAR,
        live BOOLEAN DEFAULT FALSE
    );
    CREATE TABLE audit_log (
        audit_id BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'),
        ts TIMESTAMP NOT NULL,
        actor VARCHAR,
        action VARCHAR NOT NULL,
        target VARCHAR,
        detail JSON
    );
    """,
    # 4: bulk-load speed (measured in bench/ingest.py, docs/BENCHMARKS.md). events.item_id is stored uncompressed:
    # for high-cardinality ids DuckDB's dict_fsst costs ~1 s per 5M rows to write and saves ~25 % of the file.
    # items and users lose their PRIMARY KEY index: keeping the ART index costs ~1.5 s per 5M-row ingest
    # (upserts plus commit); one row per id is kept by the only writers, ``core.data.ingest_support.merge``
    # (update matched, insert the rest), under the file's single-writer lock.
    """
    CREATE TABLE events_v4 (
        ts TIMESTAMP NOT NULL,
        user_id VARCHAR NOT NULL,
        item_id VARCHAR NOT NULL USING COMPRESSION uncompressed,
        event_type VARCHAR NOT NULL,
        session_id VARCHAR,
        dwell_ms BIGINT,
        position INTEGER,
        page VARCHAR,
        price DOUBLE,
        rating DOUBLE,
        source VARCHAR,
        ingest_id INTEGER
    );
    INSERT INTO events_v4 SELECT * FROM events;
    DROP TABLE events;
    ALTER TABLE events_v4 RENAME TO events;
    CREATE TABLE items_v4 (
        item_id VARCHAR NOT NULL,
        title VARCHAR,
        category VARCHAR,
        brand VARCHAR,
        seller_id VARCHAR,
        price DOUBLE,
        image_url VARCHAR,
        created_at TIMESTAMP,
        in_stock BOOLEAN DEFAULT TRUE,
        from_catalog BOOLEAN DEFAULT FALSE
    );
    INSERT INTO items_v4 SELECT * FROM items;
    DROP TABLE items;
    ALTER TABLE items_v4 RENAME TO items;
    CREATE TABLE users_v4 (
        user_id VARCHAR NOT NULL,
        first_seen TIMESTAMP,
        region VARCHAR,
        device VARCHAR,
        segment VARCHAR
    );
    INSERT INTO users_v4 SELECT * FROM users;
    DROP TABLE users;
    ALTER TABLE users_v4 RENAME TO users;
    """,
    # 5: events stamped outside 1970–2100 (loaded before the ingest rejected them; a year-10000 event made every
    # page that reads the date range fail) move to rejects with their ingest, line unknown; the counts of
    # their ingests follow, and users' first_seen is taken again from the events that stay
    """
    CREATE TEMP TABLE out_of_range AS
        SELECT * FROM events WHERE ts < TIMESTAMP '1970-01-01' OR ts >= TIMESTAMP '2101-01-01';
    INSERT INTO rejects
        SELECT ingest_id, NULL, concat_ws(',', CAST(ts AS VARCHAR), user_id, item_id, event_type, session_id),
               'timestamp ' || CAST(ts AS VARCHAR) || ' is outside the years 1970–2100 (moved out of the events '
               || 'by an upgrade) — check the year'
        FROM out_of_range;
    UPDATE ingests SET loaded = loaded - o.n, rejected = rejected + o.n
        FROM (SELECT ingest_id, count(*) AS n FROM out_of_range GROUP BY ingest_id) o
        WHERE ingests.ingest_id = o.ingest_id;
    DELETE FROM events WHERE ts < TIMESTAMP '1970-01-01' OR ts >= TIMESTAMP '2101-01-01';
    UPDATE users SET first_seen = f.first_seen
        FROM (SELECT user_id, min(ts) AS first_seen FROM events GROUP BY user_id) f
        WHERE users.user_id = f.user_id
          AND (users.first_seen < TIMESTAMP '1970-01-01' OR users.first_seen >= TIMESTAMP '2101-01-01');
    UPDATE users SET first_seen = NULL
        WHERE first_seen < TIMESTAMP '1970-01-01' OR first_seen >= TIMESTAMP '2101-01-01';
    DROP TABLE out_of_range;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; returns the version found before."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMP)")
    found = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
    for version in range(found + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(MIGRATIONS[version - 1])
            con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return found


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
    folders (HS_IMPORT_DIRS), the uploads and the demo shop's files — and the release artifacts. Not the
    data folder as a whole: the database, its WAL and spill folder are DuckDB's own (they need no
    permission), and model runs are written by torch. A feature that reads or writes files through DuckDB
    adds its folder here (``Settings`` names it)."""
    cfg = settings()
    folders = [*cfg.import_dirs, cfg.uploads_dir, cfg.data_dir / "demo", cfg.releases_dir]
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


@contextmanager
def writing(
    db_path: str | Path | None = None, *, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """The per-database write lock of this process, held for a whole write: an ingest (its duplicate check
    included), a rule-set save, a model activation, a release. DuckDB's file lock only keeps other
    processes out; inside one process every browser session is a thread, and two loads of one file would
    both commit. Re-entrant; a writer that has to wait says so through ``on_wait``."""
    key = _key(Path(db_path) if db_path else Path(settings().db_path))
    with _write_locks_lock:
        lock = _write_locks.setdefault(key, threading.RLock())
    if not lock.acquire(timeout=0.2):
        message = f"waiting for another write to {Path(key).name} in this app to finish (a load or a save)"
        log.info(message)
        if on_wait:
            on_wait(message)
        lock.acquire()
    try:
        yield
    finally:
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
    con: duckdb.DuckDBPyConnection, actor: str, action: str, target: str, detail: dict | None = None
) -> None:
    """Append one row to the audit log inside the caller's transaction."""
    import json

    con.execute(
        "INSERT INTO audit_log (ts, actor, action, target, detail) VALUES (now(), ?, ?, ?, ?)",
        [actor, action, target, json.dumps(detail or {}, default=str)],
    )
