"""The schema: numbered migrations, applied in order as a database opens (``core.store``).

Append only: a migration that landed on main is never edited or renumbered; a new one is appended.
"""

from __future__ import annotations

import duckdb

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
    # 6: events stamped outside 1970–2100 (loaded before the ingest rejected them; a year-10000 event made every
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


def found_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version a database is at. One exception to "the recorded number": the branch of issue 10
    shipped its events-range migration (now 6) as number 5 before main's accounts and releases took 5, so a
    database that branch alone migrated says 5 without main's tables. It is at 4 as far as main's 5 is
    concerned; migration 6 then runs again, which changes nothing (it only moves events that the ingest
    rejects since)."""
    found = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
    if found >= 5:
        tables = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = 'app_users'"
        ).fetchall()[0][0]
        if not tables:
            return 4
    return found


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; returns the version found before."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMP)")
    found = found_version(con)
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
