"""Homepage latency: one homepage (k=24 from M=500, every rule kind active), and batched homepages/s.

    .venv/bin/python bench/homepage.py [--data DIR] [--users 10000] [--repeat 200]
    .venv/bin/python bench/homepage.py --compare /tmp/before --rounds 3 [--data DIR] [--users 3000]

Uses the shop in ``--data`` (default: the app's ``data/``; run ``make run`` or
``python -m core first-run`` first). Prints p50/p95 of ``homepage_for`` and the throughput of
``homepages_for`` over ``--users`` users.

``--compare DIR`` measures this checkout against another one (say the commit before a redesign, checked out
with ``git worktree add DIR <commit>``): each round runs that checkout's ``bench/homepage.py`` and this one,
each in its own process and alternating which goes first, then prints the medians and the ratios
(p50 after / before, homepages/s after / before) with the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def all_rules(item_ids: list[str]):
    from core.ranking.rules import Rule, RuleSet

    rules = [
        Rule(rule_id="pin", kind="pin", params={"item_id": item_ids[0], "slot": 3}),
        Rule(rule_id="block", kind="block", params={"condition": {"item_id": [item_ids[1]]}}),
        Rule(rule_id="boost", kind="boost", params={"condition": {"new_days": 14}, "factor": 1.3}),
        Rule(rule_id="bury", kind="bury", params={"condition": {"price_max": 5.0}, "factor": 0.7}),
        Rule(rule_id="reserve", kind="reserve", params={"condition": {"promoted": True}, "slots": 2}),
        Rule(rule_id="cap", kind="cap", params={"attribute": "brand", "max": 3}),
        Rule(rule_id="diversity", kind="diversity", params={"method": "dpp", "theta": 0.7}),
        Rule(rule_id="calibration", kind="calibration", params={"strength": 0.3}),
        Rule(
            rule_id="fairness",
            kind="fairness",
            params={"condition": {"seller_tier": "small"}, "p": 0.25, "alpha": 0.1},
        ),
    ]
    return RuleSet(rule_set_id="bench", version=1, name="every rule kind", rules=rules)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("HS_DATA", "data"))
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: the serving setting)")
    parser.add_argument("--compare", type=Path, help="another checkout to measure against, run by run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.compare:
        compare(args)
        return
    os.environ["HS_DATA"] = str(Path(args.data).resolve())
    os.environ["HS_DB"] = str(Path(args.data).resolve() / "shop.duckdb")

    import torch

    from core import store
    from core.ranking.homepage import homepage_for, homepages_for, shop_context
    from core.ranking.impact import sample_users

    ctx = shop_context()
    # the serving setting (HS_INFER_THREADS, default 1; loading the model applies it), unless --threads
    if args.threads:
        torch.set_num_threads(args.threads)
    rule_set = all_rules(ctx.active.catalog.vocab.item_ids)
    users = sample_users(args.users, seed=1)
    n_events = store.scalar("SELECT count(*) FROM events")
    print(
        f"shop: {n_events:,} events, {ctx.active.catalog.n_items:,} items; scorer: {ctx.active.label}; "
        f"{torch.get_num_threads()} torch thread(s)"
    )

    for u in users[:5]:  # warm-up
        homepage_for(u, rule_set)
    times, cpu = [], []
    for i in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        homepage_for(users[i % len(users)], rule_set)
        times.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    times.sort()
    p50, p95 = statistics.median(times), times[int(0.95 * (len(times) - 1))]
    print(
        f"one homepage (k=24, M=500, all rule kinds): p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(times)} calls"
        f" (CPU p50 {statistics.median(cpu):.1f} ms: the figure to read on a shared machine)"
    )

    t0 = time.perf_counter()
    done = 0
    for start in range(0, len(users), 1000):
        done += len(homepages_for(users[start : start + 1000], rule_set, with_history=False))
    seconds = time.perf_counter() - t0
    print(f"batched: {done:,} homepages in {seconds:.1f} s = {done / seconds:,.0f} homepages/s")


def _run(script: Path, args) -> tuple[float, float]:
    """(p50 ms, homepages/s) of one bench run in its own process."""
    cmd = [
        sys.executable,
        str(script),
        "--data",
        str(args.data),
        "--users",
        str(args.users),
        "--repeat",
        str(args.repeat),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=script.parent.parent).stdout
    p50 = float(re.search(r"p50 ([\d.]+) ms", out).group(1))
    rate = float(re.search(r"= ([\d,.]+) homepages/s", out).group(1).replace(",", ""))
    return p50, rate


def compare(args) -> None:
    before, after = args.compare.resolve() / "bench" / "homepage.py", Path(__file__).resolve()
    runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for n in range(args.rounds):
        order = (
            [("before", before), ("after", after)] if n % 2 == 0 else [("after", after), ("before", before)]
        )
        for name, script in order:
            runs[name].append(_run(script, args))
            print(
                f"round {n + 1} {name}: p50 {runs[name][-1][0]:.1f} ms, {runs[name][-1][1]:,.0f} homepages/s "
                f"(load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    med = {
        name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
        for name, rs in runs.items()
    }
    for name, (p50, rate) in med.items():
        print(f"median {name}: p50 {p50:.1f} ms, {rate:,.0f} homepages/s")
    print(
        f"p50 after / before = {med['after'][0] / med['before'][0]:.3f} (target ≤ 1.10); "
        f"homepages/s after / before = {med['after'][1] / med['before'][1]:.3f} (target ≥ 0.9); "
        f"load average {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
