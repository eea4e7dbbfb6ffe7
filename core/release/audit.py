"""The audit log: append-only, one row per change, each row chained to the one before by a hash.

A row is only ever inserted, by ``append`` in the caller's transaction, so it lands with the change or not
at all. No code path updates or deletes a row (tests/unit/test_architecture.py reads the source for it).
DuckDB has no triggers or grants that could forbid it, so the log is also tamper-evident: each row keeps
sha256(previous hash + its own content) and ``audit_head`` the last hash; ``verify`` names any row that
was edited, removed or slipped in. Writing ``audit_head`` also orders the appends: two transactions that
append at once conflict in DuckDB and one is refused, so the chain never forks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import duckdb
import polars as pl

from core import store
from core.release.chain import append, row_hash, utcnow
from core.release.roles import Account, Permission, require

__all__ = ["ACTIONS", "append", "query", "record", "utcnow", "verify", "write"]

T = TypeVar("T")

# what the application writes (other values are allowed: the log records, it does not judge)
ACTIONS = (
    "save_rule_set",
    "publish",
    "schedule",
    "rollback",
    "cancel_schedule",
    "activate_run",
    "train",
    "ingest",
    "ingest_catalog",
    "create_user",
    "change_role",
    "reset_password",
    "change_password",
    "disable_user",
    "enable_user",
    "create_token",
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "view_shopper",
    "forget_user",
)


def write(work: Callable[[duckdb.DuckDBPyConnection], T], db_path=None, attempts: int = 6) -> T:
    """Run ``work(con)`` in one transaction, again when a concurrent append won the audit head
    (DuckDB refuses the later of two writers of one row; the work is then simply repeated)."""
    for attempt in range(attempts):
        try:
            with store.transaction(db_path) as con:
                return work(con)
        except duckdb.TransactionException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def record(actor: Account | str, action: str, target: str, *, before=None, after=None, db_path=None) -> int:
    """Append one row in its own transaction (for events that change nothing else, such as a sign-in)."""
    return write(lambda con: append(con, actor, action, target, before=before, after=after), db_path)


def query(
    reader: Account,
    *,
    actor: str | None = None,
    action: str | list[str] | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 500,
    db_path=None,
) -> pl.DataFrame:
    """The newest rows first, filtered: exact actor, one or more actions, ``target`` as a substring,
    a time window (UTC). Needs READ_AUDIT_LOG."""
    require(reader, Permission.READ_AUDIT_LOG)
    actions = [action] if isinstance(action, str) else list(action or [])
    sql = """SELECT audit_id, ts, actor, action, target, before, coalesce(after, detail) AS after
             FROM audit_log
             WHERE (? IS NULL OR actor = ?)
               AND (? = 0 OR list_contains(?::VARCHAR[], action))
               AND (? IS NULL OR contains(target, ?))
               AND (? IS NULL OR ts >= ?) AND (? IS NULL OR ts < ?)
             ORDER BY audit_id DESC LIMIT ?"""
    params = [actor, actor, len(actions), actions, target, target, since, since, until, until, int(limit)]
    return store.query(sql, params, db_path=db_path)


def verify(db_path=None) -> list[str]:
    """Problems in the chain (empty when every row since the chain began is as it was written)."""
    with store.connect(db_path) as con:
        first_id, last_id, last_hash = con.execute(
            "SELECT first_id, last_id, last_hash FROM audit_head WHERE id = 1"
        ).fetchall()[0]
        rows = con.execute(
            """SELECT audit_id, ts, actor, action, target, before, after, prev_hash, row_hash
               FROM audit_log WHERE audit_id > ? ORDER BY audit_id""",
            [first_id],
        ).fetchall()
    problems, prev, seen = [], "", first_id
    for *row, prev_hash, stored in rows:
        if prev_hash != prev:
            problems.append(f"row {row[0]}: does not follow row {seen} (a row was removed or inserted)")
        if stored != row_hash(prev_hash or "", tuple(row)):
            problems.append(f"row {row[0]}: its content was changed after it was written")
        prev, seen = stored or "", row[0]
    if (seen, prev) != (last_id, last_hash):
        problems.append(f"the log ends at row {seen} but its head says row {last_id}: rows were removed")
    return problems
