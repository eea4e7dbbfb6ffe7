"""The store across processes: an ingest running in another process while this one keeps querying the
same database file — both succeed, because ``store.connect`` opens per unit of work and waits with
backoff while the other process holds the file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb

from core import store

ROOT = Path(__file__).resolve().parents[2]
ROWS = 200_000


def test_ingest_in_another_process_while_querying(db, tmp_path):
    log = tmp_path / "rees.csv"
    con = duckdb.connect()
    con.execute(f"""COPY (
        SELECT strftime(TIMESTAMP '2019-10-01' + to_seconds(i), '%Y-%m-%d %H:%M:%S') || ' UTC' AS event_time,
               'view' AS event_type, (1000 + i % 500)::VARCHAR AS product_id, '1' AS category_id,
               'a.b' AS category_code, 'x' AS brand, '1.5' AS price, (i % 1000)::VARCHAR AS user_id,
               'session' || (i // 20) AS user_session
        FROM range({ROWS}) t(i)) TO '{log}' (HEADER)""")
    con.close()
    script = (
        "import sys; from core.data.ingest import ingest_events; from core.release.roles import SYSTEM; "
        "r = ingest_events(sys.argv[1], db_path=sys.argv[2], actor=SYSTEM); print(r.loaded)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(log), str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen, queries = [], 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        seen.append(store.query("SELECT count(*) AS n FROM events", db_path=db)["n"][0])
        queries += 1
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert int(out.strip().splitlines()[-1]) == ROWS
    assert queries >= 1 and set(seen) <= {0, ROWS}  # never a half-written load
    assert store.scalar("SELECT count(*) FROM events", db_path=db) == ROWS
    assert store.scalar("SELECT status FROM ingests", db_path=db) == "done"
