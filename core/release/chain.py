"""Appending one audit row to the hash chain, inside the caller's transaction (see ``core.release.audit``).

Kept apart from the rest of the log so that ``core.store.audit`` (older callers) can append without an
import cycle: this module needs nothing of the store but the caller's connection.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import duckdb

from core.release.roles import Account


def utcnow() -> datetime:
    """Now, as the naive UTC time the release and account tables store."""
    return datetime.now(UTC).replace(tzinfo=None)


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def row_hash(prev: str, row: tuple) -> str:
    audit_id, ts, actor, action, target, before, after = row
    text = json.dumps([audit_id, ts.isoformat(), actor, action, target, before, after])
    return hashlib.sha256((prev + text).encode()).hexdigest()


def append(
    con: duckdb.DuckDBPyConnection,
    actor: Account | str,
    action: str,
    target: str,
    *,
    before=None,
    after=None,
) -> int:
    """Append one row inside the caller's transaction; returns its id. ``before``/``after`` are any
    JSON-able values (the object's state before and after the change)."""
    name = actor.username if isinstance(actor, Account) else str(actor)
    prev = con.execute("SELECT last_hash FROM audit_head WHERE id = 1").fetchall()[0][0]
    audit_id = con.execute("SELECT nextval('audit_seq')").fetchall()[0][0]
    row = (audit_id, utcnow(), name, action, str(target), _json(before), _json(after))
    digest = row_hash(prev, row)
    con.execute(
        """INSERT INTO audit_log (audit_id, ts, actor, action, target, before, after, prev_hash, row_hash)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [*row, prev, digest],
    )
    con.execute("UPDATE audit_head SET last_id = ?, last_hash = ? WHERE id = 1", [audit_id, digest])
    return audit_id
