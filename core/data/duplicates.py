"""Duplicate events of a load: rows of the temp table ``stage`` equal on (ts, user, item, type, session) to a
stored event or to another row of the same file. Found by the 64-bit key hash ``stage.h`` first (the repeated
hashes by a sort in numpy), compared exactly only within hash matches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

KEY = "ts, user_id, item_id, event_type, session_id"


def find_duplicates(con, ident: str) -> int:
    """``dups(ident)``: ``stage`` rows equal on (ts, user, item, type, session — NULL equals NULL) to a
    stored event or to an earlier ``stage`` row. Hash first, exact comparison only among hash matches.
    Returns how many."""
    me = f"(SELECT {'rowid AS rid, ' if ident == 'rid' else ''}* FROM stage WHERE h IS NOT NULL)"
    con.execute("CREATE TEMP TABLE dups " + ("(rid BIGINT)" if ident == "rid" else "(ord BIGINT, k BIGINT)"))
    repeated = _repeated_hashes(con)
    if len(repeated):
        # zero-copy from the numpy buffer: pa.array(numpy) would import pandas (0.5 s in a fresh process)
        column = pa.Array.from_buffers(pa.uint64(), len(repeated), [None, pa.py_buffer(repeated)])
        con.register("repeated_h", pa.Table.from_arrays([column], names=["h"]))
        try:
            con.execute(f"""INSERT INTO dups
                SELECT {ident} FROM (
                    SELECT {ident}, row_number() OVER (PARTITION BY {KEY} ORDER BY {ident}) AS rn
                    FROM {me} WHERE h IN (SELECT h FROM repeated_h))
                WHERE rn > 1""")
        finally:
            con.unregister("repeated_h")
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM stage WHERE h IS NOT NULL").fetchall()[0]
    stored = (
        con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE ts BETWEEN ? AND ? LIMIT 1)", [lo, hi]
        ).fetchall()[0][0]
        if lo is not None
        else 0
    )
    if stored:
        con.execute(
            f"""INSERT INTO dups
            SELECT {ident} FROM {me} s
            SEMI JOIN (SELECT {KEY} FROM events WHERE ts BETWEEN ? AND ?) e
              ON s.ts = e.ts AND s.user_id = e.user_id AND s.item_id = e.item_id
             AND s.event_type = e.event_type
             AND s.session_id IS NOT DISTINCT FROM e.session_id
            EXCEPT SELECT {ident} FROM dups""",
            [lo, hi],
        )
    return con.execute("SELECT count(*) FROM dups").fetchall()[0][0]


def _repeated_hashes(con) -> np.ndarray:
    """Key hashes that occur more than once in ``stage``. Sorting the hashes in numpy costs about a quarter
    of the CPU of DuckDB's ``GROUP BY h HAVING count(*) > 1`` over millions of distinct keys (measured:
    0.17 s against 0.7 s wall on 5M rows, 2 cores)."""
    h = np.asarray(con.execute("SELECT h FROM stage WHERE h IS NOT NULL").fetchnumpy()["h"], dtype=np.uint64)
    h.sort()  # in place: the fetched array is ours
    return np.ascontiguousarray(np.unique(h[1:][h[1:] == h[:-1]]), dtype=np.uint64)
