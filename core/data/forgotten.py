"""A forgotten shopper stays forgotten: their events in a file loaded later are left out of the load and
counted, never stored (``core.release.privacy.forget_user`` erased what the store held).

The store keeps forgotten shoppers as pseudonyms only (a keyed hash), so a load hashes the distinct users of
its good rows, and only when somebody has been forgotten: a store without forgotten shoppers pays nothing.
A rejected line is kept as the file had it, for the person fixing the file; ``forget_user`` again removes it.
"""

from __future__ import annotations

from core.data.stage import derive_ids
from core.release.privacy import forgotten_keys, pseudonym


def leave_out_forgotten(con, fmt: str) -> tuple[int, int]:
    """Delete the good rows of forgotten shoppers from the temp table ``stage`` (and derive its items and users
    again), inside the load's transaction. Returns (events left out, shoppers)."""
    keys = forgotten_keys(con)
    if not keys:
        return 0, 0
    users = [row[0] for row in con.execute("SELECT user_id FROM user_first").fetchall()]
    ids = [u for u in users if pseudonym(u) in keys]
    if not ids:
        return 0, 0
    con.execute("CREATE OR REPLACE TEMP TABLE forgotten_ids AS SELECT unnest(?::VARCHAR[]) AS user_id", [ids])
    # DuckDB's DELETE answers with the number of rows it deleted: one pass over ``stage``, not a count first
    n = con.execute(
        "DELETE FROM stage WHERE reason IS NULL AND user_id IN (SELECT user_id FROM forgotten_ids)"
    ).fetchall()[0][0]
    derive_ids(con, fmt)
    return n, len(ids)


def forgotten_note(events: int, shoppers: int) -> str | None:
    """What the ingest report says about the events left out, or None when there were none."""
    if not events:
        return None
    return (
        f"{events:,} event(s) of {shoppers:,} forgotten shopper(s) left out: a forgotten shopper's events are "
        "never stored again"
    )
