"""Storefront API under load: Locust (headless) against ``python -m core serve`` on loopback.

    .venv/bin/python bench/serve.py [--data DIR] [--users 200] [--seconds 60] [--steps 25,50,100,200,400]
        [--switch rules|model]

The shop: a copy of ``--data`` (a data folder with a trained model) in a temporary folder, or, without
``--data``, the demo shop built there (``--shop-users/--shop-items/--shop-days``, default the full demo
shop) with an LSTM trained for ``--train-s`` seconds. Two releases are published on top of what
it has (the model; the model and a boost rule, with ``--switch model`` a newly trained model too); the API
serves the second with its default workers.

The run: ``--users`` Locust shoppers for ``--seconds`` s, each 0.5–1.5 s on a page between requests,
mixing GET and POST homepage (up to 20 visit events), similar items and search
(``bench/locustfiles/storefront.py``). Halfway, a rollback to the first release makes a third live: the
workers switch while the shoppers keep asking. Releases that differ in their rules only share the loaded
snapshot (``--switch rules``, the common publish); ``--switch model`` makes each worker load the whole
release. A response fails unless it is a 200 whose body and ``X-Release-Id`` name the same release. Then
the limit: shorter runs at growing user counts (``--steps``) until p95 passes 100 ms, giving the requests/s
where it crosses. Prints markdown for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LOCUSTFILE = ROOT / "bench" / "locustfiles" / "storefront.py"
LIMIT_MS = 100.0


def prepare_shop(args, work: Path) -> tuple[int, int]:
    """A trained shop in ``work`` (HS_DATA points there) with two more releases published: their ids."""
    os.environ["HS_DATA"], os.environ["HS_DB"] = str(work), str(work / "shop.duckdb")
    if args.data:
        from bench.publish import copy_shop

        copy_shop(Path(args.data).resolve(), work)
    else:
        from core.data.demo import build_demo_shop
        from core.model_runs import train_run
        from core.release.roles import SYSTEM

        work.mkdir(parents=True)
        t0 = time.perf_counter()
        print(
            build_demo_shop(users=args.shop_users, items=args.shop_items, days=args.shop_days, actor=SYSTEM),
            flush=True,
        )
        print(f"demo shop built in {time.perf_counter() - t0:.0f} s; training {args.train_s} s", flush=True)
        train_run(actor=SYSTEM, time_budget_s=args.train_s, activate=True)
    from core.ranking.rule_sets import load_rule_set, save_rule_set
    from core.ranking.rules import Rule
    from core.release import releases
    from core.release.roles import SYSTEM

    head = releases.release_state().head_id
    first = releases.publish(SYSTEM, "bench: the model", expected_head=head).release_id
    if args.switch == "model":  # the second release serves a new model of the same kind: a full load
        from core.model_runs import train_run
        from core.release.artifact import open_live

        kind = open_live()[1].model_kind
        train_run(actor=SYSTEM, architecture=kind, time_budget_s=args.train_s, activate=True)
    rules = load_rule_set()
    boost = Rule("bench-boost", "boost", {"condition": {"seller_tier": "small"}, "factor": 1.3})
    save_rule_set(rules.with_rules([*rules.rules, boost]), rules.version, SYSTEM, "bench: a boost")
    return first, releases.publish(SYSTEM, "bench: a boost", expected_head=first).release_id


def write_ids(path: Path) -> dict:
    """Shoppers, items and title words of the live release for the Locust shoppers to draw from."""
    from core.release.artifact import open_live

    artifact = open_live()[1]
    users = artifact.table("users")["user_id"].to_list()
    items = artifact.table("items")
    words = sorted({w.lower() for t in items["title"].to_list() for w in t.split() if len(w) > 3})
    ids = {"users": users[:5000], "items": items["item_id"].to_list(), "words": words[:500]}
    path.write_text(json.dumps(ids))
    return {"users": len(users), "items": items.height}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "core", "serve", "--port", str(port)], cwd=ROOT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
        if server.poll() is not None:
            break
    server.kill()
    raise SystemExit("the API did not become healthy within 180 s")


def run_locust(port: int, users: int, seconds: int, work: Path, name: str) -> dict:
    """One headless Locust run; its aggregated and per-request statistics, and the release ids seen."""
    prefix, seen = work / name, work / f"{name}-seen.json"
    env = {**os.environ, "HS_BENCH_IDS": str(work / "ids.json"), "HS_BENCH_SEEN": str(seen)}
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(users), "-r", str(max(5, users // 4)), "-t", f"{seconds}s", "--reset-stats",
        "--host", f"http://127.0.0.1:{port}", "--csv", str(prefix), "--stop-timeout", "10",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=ROOT, check=False, capture_output=True, text=True)
    if not Path(f"{prefix}_stats.csv").exists():
        raise SystemExit(f"locust wrote no statistics:\n{done.stderr[-3000:]}")
    with open(f"{prefix}_stats.csv") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    return {"rows": rows, "seen": json.loads(seen.read_text()) if seen.exists() else {}}


def figures(row: dict) -> dict:
    number = lambda k: float(row[k]) if row[k] not in ("", "N/A") else float("nan")  # noqa: E731
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": number("Requests/s"),
        "p50": number("50%"),
        "p95": number("95%"),
        "p99": number("99%"),
    }


def switch_midway(seconds: int, ids: tuple[int, int], result: dict) -> threading.Thread:
    """Roll back to the first of ``ids`` halfway through the run (a new release on its artifact)."""

    def roll_back() -> None:
        from core.release import releases
        from core.release.roles import SYSTEM

        time.sleep(seconds / 2)
        t0 = time.perf_counter()
        made = releases.rollback(SYSTEM, ids[0], "bench: switch under load", expected_head=ids[1])
        result.update(release=made.release_id, at_s=seconds / 2, rollback_s=time.perf_counter() - t0)

    thread = threading.Thread(target=roll_back, daemon=True)
    thread.start()
    return thread


def print_main(users: int, seconds: int, run: dict, switch: dict) -> None:
    print(
        f"\n### {users} shoppers, {seconds} s, a release switch ({switch['kind']}) at {switch.get('at_s', '?')} s\n"
    )
    print("| requests | count | failures | req/s | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|---|")
    for name, row in sorted(run["rows"].items(), key=lambda kv: kv[0] == "Aggregated"):
        f = figures(row)
        print(f"| {name} | {f['requests']} | {f['failures']} | {f['rps']:.1f} | {f['p50']:.0f} | "
              f"{f['p95']:.0f} | {f['p99']:.0f} |")  # fmt: skip
    print(
        f"\nanswers per release id: {run['seen']}; rollback took {switch.get('rollback_s', float('nan')):.2f} s"
    )


def find_limit(port: int, steps: list[int], seconds: int, work: Path) -> None:
    print(f"\n### the limit: p95 against throughput ({seconds} s per step)\n")
    print("| shoppers | req/s | p50 ms | p95 ms | p99 ms | failures |\n|---|---|---|---|---|---|")
    below = None
    for users in steps:
        f = figures(run_locust(port, users, seconds, work, f"step-{users}")["rows"]["Aggregated"])
        print(f"| {users} | {f['rps']:.1f} | {f['p50']:.0f} | {f['p95']:.0f} | {f['p99']:.0f} | {f['failures']} |",
              flush=True)  # fmt: skip
        if f["p95"] > LIMIT_MS:
            where = f"between {below['rps']:.0f} and {f['rps']:.0f}" if below else f"below {f['rps']:.0f}"
            print(f"\np95 crosses {LIMIT_MS:.0f} ms {where} req/s")
            return
        below = f
    print(f"\np95 stayed under {LIMIT_MS:.0f} ms up to {below['rps']:.0f} req/s (the largest step)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", help="a data folder with a trained model (copied); default: build the demo shop")
    p.add_argument("--shop-users", type=int, default=20000)
    p.add_argument("--shop-items", type=int, default=5000)
    p.add_argument("--shop-days", type=int, default=60)
    p.add_argument("--train-s", type=int, default=60)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--steps", default="25,50,100,200,400")
    p.add_argument("--step-seconds", type=int, default=20)
    p.add_argument(
        "--switch",
        choices=("rules", "model"),
        default="rules",
        help="what the two releases differ in: the rule set (the workers keep their snapshot), or the model too",
    )
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hs-bench-serve-"))
    ids = prepare_shop(args, work / "data")
    shop = write_ids(work / "ids.json")
    port = free_port()
    server = start_server(port)
    try:
        load_before = os.getloadavg()
        switch: dict = {"kind": args.switch}
        thread = switch_midway(args.seconds, ids, switch)
        run = run_locust(port, args.users, args.seconds, work, "main")
        thread.join(timeout=60)
        print(f"\nshop: {shop['users']:,} shoppers, {shop['items']:,} items; the API: `python -m core serve` "
              f"(2 worker processes); load average before {load_before[0]:.1f}")  # fmt: skip
        print_main(args.users, args.seconds, run, switch)
        find_limit(port, [int(n) for n in args.steps.split(",")], args.step_seconds, work)
        print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
