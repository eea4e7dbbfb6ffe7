"""Another process holding the database: we wait with backoff and say so, then give a clear error."""

import subprocess
import sys
import time

import pytest

from core import store
from core.errors import StoreBusyError

HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(float(sys.argv[2]))"


def hold(path, seconds):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_waits_and_says_so_then_proceeds(db):
    proc = hold(db, 3.5)
    told = []
    started = time.monotonic()
    with store.connect(db, on_wait=told.append) as con:
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(0,)]
    assert time.monotonic() - started > 2
    assert told and "another process" in told[0]
    proc.wait()


def test_gives_up_with_a_clear_error(db, monkeypatch):
    monkeypatch.setenv("HS_LOCK_WAIT", "1")
    proc = hold(db, 4)
    try:
        with pytest.raises(StoreBusyError, match="another process has held the database"):
            with store.connect(db):
                pass
    finally:
        proc.kill()
