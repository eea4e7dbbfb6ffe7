"""The batch CLI as a shell user runs it: ``python -m core ingest`` then ``python -m core stats``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"HS_DB": str(db), "HS_DATA": str(db.parent)}
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_ingest_then_stats_as_json(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(
        "ts,user_id,item_id,event_type,session_id\n"
        "2024-05-01 10:00:00,u1,i1,view,s1\n"
        "2024-05-01 10:01:00,u1,i1,add_to_cart,s1\n"
        "2024-05-01 10:02:00,u2,i2,view,s2\n"
        "2024-05-01 10:03:00,u2,i2,VIEW,s2\n"
    )
    db = tmp_path / "shop.duckdb"
    ingest = run_cli("ingest", str(log), db=db)
    assert ingest.returncode == 0, ingest.stderr
    assert "loaded 4" in ingest.stdout
    stats = run_cli("stats", db=db)
    assert stats.returncode == 0, stats.stderr
    got = json.loads(stats.stdout)
    assert (got["events"], got["users"], got["items"], got["days"]) == (4, 2, 2, 1)
    assert got["events_by_type"] == {"view": 3, "add_to_cart": 1}
