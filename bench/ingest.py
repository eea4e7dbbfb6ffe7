"""Ingest throughput: our ``ingest_events`` against DuckDB's plain ``CREATE TABLE … AS read_csv``.

    .venv/bin/python bench/ingest.py [--rows 5000000] [--repeat 5] [--keep DIR]

Generates a deterministic REES46-format CSV (``--rows`` rows, in a temporary folder unless
``--keep``), then times

* plain — ``CREATE TABLE t AS SELECT * FROM read_csv(file)`` into a fresh database file, and
* ours  — ``ingest_events(file)`` into a fresh migrated store (validation, line-numbered rejects,
  duplicate detection, items and users derived, one transaction).

Each timed run is its own Python process (as a CLI ingest is), timed from just before the work to just
after the database is closed, so that neither inherits the other's memory or caches; the two alternate,
and which goes first alternates from one run to the next, so that both see the same machine load.
Prints each run, the medians and the ratio (target: ours ≤ 1.5 × plain). Each run's CPU seconds (all the
process's threads, over the same span) are printed too: on a shared machine they move far less with the load than
wall time, so their ratio tells whether a change made the work itself heavier.

Ours runs as the product does, on the store's locked-down DuckDB instance (``core.shared_db``); plain is
a bare ``duckdb.connect``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from core.release.roles import SYSTEM  # noqa: E402


def generate(path: Path, rows: int) -> None:
    """REES46-like rows: 9 event types weights, 200k products, 50k sessions of 20 events, empty
    category_code/brand on some rows, a few in-file duplicates (as in real exports)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"""COPY (
        SELECT strftime(TIMESTAMP '2019-10-01' + to_seconds(i * 3 // 5), '%Y-%m-%d %H:%M:%S') || ' UTC'
                   AS event_time,
               (['view', 'view', 'view', 'view', 'view', 'view', 'cart', 'remove_from_cart', 'purchase'])
                   [1 + (hash(i) % 9)::INT] AS event_type,
               (1000000 + hash(i * 7) % 200000)::VARCHAR AS product_id,
               (2053013554658804075 + (hash(i * 7) % 200000) % 500)::VARCHAR AS category_id,
               CASE WHEN hash(i * 7) % 3 = 0 THEN NULL
                    ELSE (['electronics.audio.headphone', 'appliances.kitchen.washer', 'computers.notebook',
                           'apparel.shoes'])[1 + (hash(i * 7) % 4)::INT] END AS category_code,
               CASE WHEN hash(i * 7) % 5 = 0 THEN NULL
                    ELSE (['apple', 'samsung', 'xiaomi', 'lg', 'sony'])[1 + (hash(i * 11) % 5)::INT]
               END AS brand,
               round(1 + (hash(i * 7) % 100000) / 100.0, 2)::VARCHAR AS price,
               (500000000 + hash(i // 20) % 1000000)::VARCHAR AS user_id,
               md5((i // 20)::VARCHAR) AS user_session
        FROM range({int(rows)}) t(i)
    ) TO '{path}' (HEADER, DELIMITER ',')""")
    con.close()


def _fresh(path: Path) -> None:
    for suffix in ("", ".wal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def plain(csv: Path, db: Path) -> dict:
    _fresh(db)
    duckdb.connect(str(db)).close()  # as ours opens its store before the clock: both start warm
    start, cpu = time.perf_counter(), time.process_time()
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?)", [str(csv)])
    con.close()
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}


def ours(csv: Path, db: Path) -> dict:
    from core import store
    from core.data.ingest import ingest_events

    _fresh(db)
    with store.connect(db):  # the migrations are not part of the load
        pass
    start, cpu = time.perf_counter(), time.process_time()
    result = ingest_events(csv, db_path=db, actor=SYSTEM)
    steps = " ".join(f"{k} {v:.1f}" for k, v in result.steps.items())
    return {
        "seconds": time.perf_counter() - start,
        "cpu": time.process_time() - cpu,
        "summary": f"{result.summary()}\n  steps (s): {steps}",
    }


def timed_in_subprocess(which: str, csv: Path, db: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", which, "--csv", str(csv), "--db", str(db)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", help="folder for the CSV and databases (default: a temporary one)")
    parser.add_argument("--one", choices=["plain", "ours"], help=argparse.SUPPRESS)  # one timed run
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run = plain if args.one == "plain" else ours
        print(json.dumps(run(Path(args.csv), Path(args.db))))
        return

    with tempfile.TemporaryDirectory(prefix="hs-bench-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        csv = folder / f"rees46-{args.rows}.csv"
        if not csv.exists():
            t = time.perf_counter()
            generate(csv, args.rows)
            print(
                f"generated {csv.name}: {csv.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s"
            )
        times: dict[str, list[float]] = {"plain": [], "ours": []}
        cpu: dict[str, list[float]] = {"plain": [], "ours": []}
        for run in range(args.repeat):
            order = ("plain", "ours") if run % 2 == 0 else ("ours", "plain")
            got = {which: timed_in_subprocess(which, csv, folder / f"{which}.duckdb") for which in order}
            p, o = got["plain"]["seconds"], got["ours"]["seconds"]
            times["plain"].append(p)
            times["ours"].append(o)
            for which in cpu:
                cpu[which].append(got[which]["cpu"])
            print(
                f"run {run + 1} ({order[0]} first): plain read_csv {p:6.2f} s | ingest_events {o:6.2f} s | "
                f"ratio {o / p:.2f} | cpu {got['plain']['cpu']:.1f} s vs {got['ours']['cpu']:.1f} s"
            )
            print(f"  {got['ours']['summary']}", flush=True)
        mp, mo = statistics.median(times["plain"]), statistics.median(times["ours"])
        ratios = sorted(o / p for p, o in zip(times["plain"], times["ours"], strict=True))
        print(
            f"median of {args.repeat}: plain {mp:.2f} s ({args.rows / mp / 1e6:.2f} M rows/s), "
            f"ours {mo:.2f} s ({args.rows / mo / 1e6:.2f} M rows/s), ratio {mo / mp:.2f} (target ≤ 1.5); "
            f"per-run ratios {ratios[0]:.2f}–{ratios[-1]:.2f}"
        )
        cp, co = statistics.median(cpu["plain"]), statistics.median(cpu["ours"])
        print(f"cpu seconds, median: plain {cp:.1f}, ours {co:.1f}, ratio {co / cp:.2f}")
        for which in ("plain", "ours"):
            _fresh(folder / f"{which}.duckdb")


if __name__ == "__main__":
    main()
