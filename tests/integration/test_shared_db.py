"""The shared instance: units of work of one process share one instance of the file, each with its own
cursor; the file is free for other processes between units of work; the write lock is per database and
re-entrant; a thread that holds the database cannot wait for itself."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from core import store
from core.data.ingest import ingest_events
from core.errors import StoreBusyError
from core.release.roles import SYSTEM

PROBE = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"


def another_process_can_open(db) -> bool:
    return subprocess.run([sys.executable, "-c", PROBE, str(db)], capture_output=True).returncode == 0


def test_the_file_is_held_during_a_unit_of_work_and_free_after_it(db):
    with store.connect(db):
        assert not another_process_can_open(db)
    assert another_process_can_open(db)


def test_each_unit_of_work_has_its_own_cursor(db):
    """Temp tables belong to a cursor: a load's ``stage`` is never seen by another session."""
    with store.connect(db) as one, store.connect(db) as two:
        one.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")
        assert one.execute("SELECT count(*) FROM mine").fetchall() == [(1,)]
        assert two.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'mine'").fetchall() == [
            (0,)
        ]


def test_a_thread_holding_the_database_cannot_reopen_it_for_another_file(db, tmp_path):
    log = tmp_path / "outside.csv"
    log.write_text("ts,user_id,item_id,event_type\n2024-05-01 10:00:00,u,i,view\n")
    started = time.monotonic()
    with store.connect(db):
        with pytest.raises(StoreBusyError, match="this thread still has the database open"):
            ingest_events(log, db_path=db, actor=SYSTEM)
    assert time.monotonic() - started < 10
    assert ingest_events(log, db_path=db, actor=SYSTEM).loaded == 1


def test_a_reader_in_another_thread_finishes_before_a_file_outside_is_read(db, tmp_path):
    """The instance lacks the CLI's file: the ingest waits for the open unit of work, then reopens."""
    log = tmp_path / "outside.csv"
    log.write_text("ts,user_id,item_id,event_type\n2024-05-01 10:00:00,u,i,view\n")
    holding, release = threading.Event(), threading.Event()

    def reader():
        with store.connect(db):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=reader)
    thread.start()
    holding.wait(10)
    threading.Timer(0.5, release.set).start()
    assert ingest_events(log, db_path=db, actor=SYSTEM).loaded == 1
    thread.join()


def test_the_write_lock_is_reentrant_and_makes_a_second_writer_wait(db):
    order, said = [], []

    def second():
        with store.writing(db, on_wait=said.append):
            order.append("second")

    with store.writing(db), store.writing(db):  # re-entrant
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        order.append("first")
    thread.join()
    assert order == ["first", "second"]
    assert said and "waiting for another write" in said[0]


def test_a_thread_holding_a_cursor_is_refused_the_write_lock_at_once(db):
    """Lock order: write lock, then cursor. The other way round could wait for ever (the lock's holder may
    be waiting for every cursor to close), so it is refused at once, even when nobody holds the lock."""
    started = time.monotonic()
    with store.connect(db):
        with pytest.raises(StoreBusyError, match="take the write lock .* before the cursor"):
            with store.transaction(db):
                pass
    assert time.monotonic() - started < 5


def test_a_writer_may_open_cursors_and_write_again_inside_its_lock(db):
    with store.writing(db), store.connect(db) as con:
        with store.transaction(db) as inner:  # re-entry: the thread already holds the lock
            inner.execute("INSERT INTO rejects VALUES (1, 1, 'x', 'y')")
        assert con.execute("SELECT count(*) FROM rejects").fetchall() == [(1,)]


def test_write_locks_are_per_database(db, tmp_path):
    other = tmp_path / "other.duckdb"
    entered = threading.Event()

    def writer():
        with store.writing(other):
            entered.set()

    with store.writing(db):
        thread = threading.Thread(target=writer)
        thread.start()
        assert entered.wait(5)
    thread.join()
