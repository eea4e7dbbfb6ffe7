"""Publishing cost: a publish end to end (snapshot, artifact written and fsynced, commit, pointer), a
rollback, and a reader opening and verifying the live artifact; the artifact's size per file.

    .venv/bin/python bench/publish.py [--data DIR] [--repeat 5]

Uses a copy of the shop in ``--data`` (default: the app's ``data/``; run ``make run`` first) in a
temporary folder, so the app's releases are not touched. Medians over ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def copy_shop(source: Path, target: Path) -> None:
    import duckdb

    target.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"ATTACH '{source / 'shop.duckdb'}' AS shop (READ_ONLY)")  # paths from the command line
    con.execute(f"ATTACH '{target / 'shop.duckdb'}' AS copy")
    con.execute("COPY FROM DATABASE shop TO copy")
    con.close()
    if (source / "releases").is_dir():  # the rows name these folders
        shutil.copytree(source / "releases", target / "releases")


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("HS_DATA", "data"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hs-bench-publish-")) / "data"
    copy_shop(Path(args.data).resolve(), work)
    os.environ["HS_DATA"], os.environ["HS_DB"] = str(work), str(work / "shop.duckdb")

    from core import store
    from core.ranking.homepage import invalidate
    from core.release import releases
    from core.release.artifact import open_live
    from core.release.roles import SYSTEM
    from core.release.snapshot import ranking_snapshot
    from core.release.state import release_state

    events = store.scalar("SELECT count(*) FROM events")
    cold, snap = timed(lambda: ranking_snapshot(set()))
    print(f"shop: {events:,} events, {snap.users.height:,} users, {snap.items.height:,} items, "
          f"{snap.history.height:,} steps; model {snap.run_id or 'popularity'}")  # fmt: skip
    print(f"snapshot, cold (the ranking context built from the store): {cold:.2f} s")
    publish, rollback, verify = [], [], []
    for i in range(args.repeat):
        invalidate()  # a publish in a fresh process pays the cold snapshot: measure that case
        t0 = time.perf_counter()
        made = releases.publish(SYSTEM, f"bench {i}", expected_head=release_state().head_id)
        t1 = time.perf_counter()
        releases.rollback(SYSTEM, max(1, made.release_id - 1), "bench", expected_head=made.release_id)
        t2 = time.perf_counter()
        open_live(verify=True)
        t3 = time.perf_counter()
        publish.append(t1 - t0)
        rollback.append(t2 - t1)
        verify.append(t3 - t2)
    warm = []
    for i in range(args.repeat):  # in the app the ranking context is usually warm already
        t0 = time.perf_counter()
        releases.publish(SYSTEM, f"bench warm {i}", expected_head=release_state().head_id)
        warm.append(time.perf_counter() - t0)
    median = statistics.median
    print(
        f"publish end to end (cold snapshot, fsynced artifact, commit, pointer): median {median(publish):.2f} s"
    )
    print(f"publish with the ranking context warm (as in the app): median {median(warm):.2f} s")
    print(f"rollback (verify the old artifact, commit, pointer): median {median(rollback) * 1000:.0f} ms")
    print(f"open and verify the live artifact (a reader): median {median(verify) * 1000:.0f} ms")
    _, artifact = open_live()
    sizes = {name: artifact.file(name).stat().st_size for name in artifact.files()}
    print(f"artifact: {sum(sizes.values()) / 1e6:.1f} MB — " + ", ".join(
        f"{n} {b / 1e6:.2f} MB" for n, b in sorted(sizes.items(), key=lambda kv: -kv[1])[:5]))  # fmt: skip
    print(
        f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
