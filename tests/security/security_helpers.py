"""What the store holds, table by table: to prove that a load changed only what it writes."""

from __future__ import annotations

from core import store

TABLES = (
    "events",
    "items",
    "users",
    "sellers",
    "promotions",
    "ingests",
    "rejects",
    "model_runs",
    "rule_sets",
    "releases",
    "audit_log",
    "schema_version",
)


def table_names(db) -> set[str]:
    frame = store.query("SELECT table_name FROM duckdb_tables() WHERE NOT temporary", db_path=db)
    return set(frame["table_name"])


def snapshot(db, tables=TABLES) -> dict[str, list]:
    """Every row of every table (sorted), to compare before and after a load; one unit of work."""
    with store.connect(db) as con:
        return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in tables}
