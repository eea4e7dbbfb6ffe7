"""The DuckDB store: one file, opened per unit of work, migrated on open.

DuckDB 2.0 notes: ``con.sql(sql, params=[...]).pl()`` gives a polars frame;
``con.execute(sql, [...]).fetchall()`` for tuples. A relation keeps no result and has no
``fetchone``; a ``con.execute`` result must be fetched before ``con.sql`` runs on the
same connection.

DuckDB lets one *process* hold a database file, and the app, the CLI jobs and the
serving API are separate processes. So nobody keeps the file open: ``connect()`` opens
it for one unit of work and closes it after; while another process holds it we wait
with backoff and say so (via ``on_wait``) instead of failing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from core.config import settings
from core.errors import StoreBusyError
from core.release.chain import append
from core.release.roles import Account

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
    # 5: sign-in and roles, releases (migration 3's table was never written: replaced), a hash-chained
    # append-only audit log (core.release.audit), forgotten shoppers (core.release.privacy).
    # Times in these tables are UTC.
    """
    CREATE TABLE app_users (
        username VARCHAR PRIMARY KEY,
        email VARCHAR,                      -- an OIDC sign-in maps this e-mail to the account
        role VARCHAR NOT NULL,              -- viewer | merchandiser | product_manager | admin
        password_hash VARCHAR,              -- argon2id; NULL for an account that signs in by OIDC only
        must_change BOOLEAN NOT NULL DEFAULT FALSE,  -- the password is a one-time password
        one_time_used BOOLEAN NOT NULL DEFAULT FALSE,
        disabled BOOLEAN NOT NULL DEFAULT FALSE,
        failed_sign_ins INTEGER NOT NULL DEFAULT 0,
        locked_until TIMESTAMP,
        created_at TIMESTAMP NOT NULL,
        created_by VARCHAR,
        last_sign_in TIMESTAMP
    );
    CREATE TABLE app_sessions (
        token_hash VARCHAR PRIMARY KEY,     -- sha256 of the token; the token itself is never stored
        username VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,              -- browser | oidc | token (a CLI token file)
        created_at TIMESTAMP NOT NULL,
        expires_at TIMESTAMP NOT NULL,
        last_seen TIMESTAMP NOT NULL,
        ended_at TIMESTAMP
    );
    DROP TABLE releases;
    CREATE TABLE releases (
        release_id INTEGER PRIMARY KEY,
        kind VARCHAR NOT NULL,              -- publish | rollback
        artifact VARCHAR NOT NULL,          -- folder under data/releases/
        content_hash VARCHAR NOT NULL,
        rule_set_id VARCHAR NOT NULL,
        rule_set_version INTEGER NOT NULL,
        run_id VARCHAR,                     -- NULL: the popularity fallback
        rollback_of INTEGER,
        based_on INTEGER,                   -- the newest release when the publisher reviewed the diff
        published_by VARCHAR NOT NULL,
        published_at TIMESTAMP NOT NULL,
        starts_at TIMESTAMP,                -- scheduled go-live; NULL: at once
        note VARCHAR NOT NULL
    );
    CREATE TABLE release_cancellations (
        release_id INTEGER PRIMARY KEY,
        cancelled_by VARCHAR NOT NULL,
        cancelled_at TIMESTAMP NOT NULL,
        note VARCHAR NOT NULL
    );
    ALTER TABLE audit_log ADD COLUMN before JSON;
    ALTER TABLE audit_log ADD COLUMN after JSON;
    ALTER TABLE audit_log ADD COLUMN prev_hash VARCHAR;
    ALTER TABLE audit_log ADD COLUMN row_hash VARCHAR;
    CREATE TABLE audit_head (id INTEGER PRIMARY KEY, first_id BIGINT, last_id BIGINT, last_hash VARCHAR);
    INSERT INTO audit_head SELECT 1, coalesce(max(audit_id), 0), coalesce(max(audit_id), 0), '' FROM audit_log;
    CREATE TABLE forgotten_users (
        user_key VARCHAR PRIMARY KEY,       -- keyed hash of the shopper id (core.release.privacy.pseudonym)
        forgotten_at TIMESTAMP NOT NULL,
        forgotten_by VARCHAR NOT NULL
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _open(path: Path, read_only: bool, wait_s: float, on_wait: Callable[[str], None] | None):
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    delay, told = 0.05, False
    start = time.monotonic()
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc):
                raise
            waited = time.monotonic() - start
            if time.monotonic() > deadline:
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


@contextmanager
def connect(
    db_path: str | Path | None = None,
    *,
    read_only: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database for one unit of work, migrated, and close it after.

    Inside one process DuckDB shares one database instance between connections to the
    same file, and refuses a second connection with another configuration; so the app
    opens read-write throughout and ``read_only`` is for other tools only.
    """
    cfg = settings()
    path = Path(db_path) if db_path else Path(cfg.db_path)
    key = str(path.resolve())
    if read_only and not path.exists():
        read_only = False  # nothing to read yet: create it
    with _migrate_lock:
        needs_migration = key not in _migrated
    if needs_migration and read_only:
        read_only = False  # a file from an older version must be upgraded first
    con = _open(path, read_only, cfg.lock_wait_s, on_wait)
    con.execute(
        "SET enable_progress_bar = false"
    ).fetchall()  # progress is ours to report, not DuckDB's stdout
    try:
        if needs_migration:
            migrate(con)
            with _migrate_lock:
                _migrated.add(key)
        yield con
    finally:
        con.close()


@contextmanager
def transaction(db_path: str | Path | None = None, **kw) -> Iterator[duckdb.DuckDBPyConnection]:
    """A unit of work that commits as a whole or not at all."""
    with connect(db_path, **kw) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


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
