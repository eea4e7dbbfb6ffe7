"""Many sessions in one process: every browser session is a thread. Two loads of one file at the same
moment load it once (the second waits, says so, and finds every row a duplicate), on events and on
catalogs, on a new database too; and 32 threads doing 200 mixed reads and writes each on one file share
its instance without an error, everything written found. Each test runs 20 times."""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from core import store
from core.data.ingest import ingest_catalog, ingest_events
from core.release.roles import SYSTEM

ROUNDS = range(20)
EVENTS = 20_000


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("concurrent")
    log = folder / "log.csv"
    rows = [
        f"2024-05-{1 + i // 5000:02d} {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d},u{i % 700},"
        f"i{i % 300},view,s{i // 20}"
        for i in range(EVENTS)
    ]
    log.write_text("ts,user_id,item_id,event_type,session_id\n" + "\n".join(rows) + "\n")
    items = folder / "items.csv"
    items.write_text("item_id,title,price\n" + "".join(f"i{i},Item {i},{i + 1}\n" for i in range(400)))
    return {"log": log, "items": items}


def together(*jobs):
    """Run the jobs in threads released at the same moment; their results, or the first exception."""
    start = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(i, job):
        start.wait()
        try:
            results[i] = job()
        except BaseException as exc:  # handed to the test thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def one_row_per_key(db) -> dict[str, int]:
    """How many ids are stored twice, per table (0 everywhere when every writer held the lock)."""
    return {
        table: store.scalar(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}", db_path=db)
        for table, key in (("items", "item_id"), ("users", "user_id"))
    }


@pytest.mark.parametrize("round_", ROUNDS)
def test_two_loads_of_one_log_at_once_load_it_once(tmp_path, files, round_):
    db = tmp_path / "new.duckdb"  # a new database: the migrations run under the same race
    said: list[list[str]] = [[], []]
    holding = threading.Event()

    def report(i: int, message: str) -> None:
        said[i].append(message)
        if message.startswith("reading") and not holding.is_set():
            # the load that holds the write lock (it reads under it) keeps it a little longer: on a fast
            # machine the whole load can take less than the 0.2 s after which a waiting writer says so
            holding.set()
            time.sleep(0.6)

    first, second = together(
        *(
            lambda i=i: ingest_events(
                files["log"], db_path=db, progress=lambda f, m="", i=i: report(i, m), actor=SYSTEM
            )
            for i in (0, 1)
        )
    )
    assert sorted([first.loaded, second.loaded]) == [0, EVENTS]
    assert sorted([first.duplicates, second.duplicates]) == [0, EVENTS]
    waited = said[0] if first.loaded == 0 else said[1]
    assert any("waiting for another write" in m for m in waited)
    assert store.scalar("SELECT count(*) FROM events", db_path=db) == EVENTS
    assert one_row_per_key(db) == {"items": 0, "users": 0}


@pytest.mark.parametrize("round_", ROUNDS)
def test_two_loads_of_one_catalog_at_once_keep_one_row_per_item(tmp_path, files, round_):
    db = tmp_path / "new.duckdb"
    results = together(
        lambda: ingest_catalog(files["items"], db_path=db, actor=SYSTEM),
        lambda: ingest_catalog(files["items"], db_path=db, actor=SYSTEM),
        lambda: ingest_events(files["log"], db_path=db, actor=SYSTEM),  # events create items too
    )
    assert [r.rejected for r in results] == [0, 0, 0]
    assert store.scalar("SELECT count(*) FROM items", db_path=db) == 400
    assert one_row_per_key(db) == {"items": 0, "users": 0}
    assert store.scalar("SELECT count(*) FROM items WHERE title IS NULL", db_path=db) == 0


THREADS, OPS = 32, 200


@pytest.fixture
def memory_disk(tmp_path):
    """A folder in RAM (/dev/shm) where there is one: what is tested is how threads share the instance, and
    1,600 commits would otherwise spend most of the test in fsync."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and shutil.disk_usage(shm).free > 1 << 28):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="hs-threads-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("round_", ROUNDS)
def test_32_threads_share_one_file_for_mixed_reads_and_writes(memory_disk, round_):
    """Each thread: 200 operations, one in eight a write (an audit row in a transaction), the others reads
    of what it wrote so far (a query, a scalar, a cursor of its own). No exception, everything found."""
    db = memory_disk / "shared.duckdb"

    def worker(n: int) -> int:
        rng, written = random.Random(n), 0
        for op in range(OPS):
            if rng.random() < 0.125:
                with store.transaction(db) as con:
                    store.audit(con, f"t{n}", "probe", f"{n}-{op}")
                written += 1
            elif op % 3 == 0:
                got = store.scalar("SELECT count(*) FROM audit_log WHERE actor = ?", [f"t{n}"], db_path=db)
                assert got == written
            elif op % 3 == 1:
                frame = store.query("SELECT target FROM audit_log WHERE actor = ?", [f"t{n}"], db_path=db)
                assert frame.height == written
            else:
                with store.connect(db) as con:
                    assert con.execute("SELECT count(*) FROM events").fetchall() == [(0,)]
        return written

    written = together(*(lambda n=n: worker(n) for n in range(THREADS)))
    stored = store.query("SELECT actor, target FROM audit_log", db_path=db)
    assert stored.height == sum(written)
    assert stored["target"].n_unique() == stored.height
