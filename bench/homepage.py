"""Homepage latency: one homepage (k=24 from M=500, every rule kind active), and batched homepages/s.

    .venv/bin/python bench/homepage.py [--data DIR] [--users 10000] [--repeat 200]

Uses the shop in ``--data`` (default: the app's ``data/``; run ``make run`` or
``python -m core demo`` first). Prints p50/p95 of ``homepage_for`` and the throughput of
``homepages_for`` over ``--users`` users.
"""

from __future__ import annotations

import argparse
import os
import statistics
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
        Rule(
            rule_id="diversity", kind="diversity", params={"method": "dpp", "theta": 0.7, "calibration": 0.3}
        ),
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
    args = parser.parse_args()
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
    times = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        homepage_for(users[i % len(users)], rule_set)
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    p50, p95 = statistics.median(times), times[int(0.95 * (len(times) - 1))]
    print(
        f"one homepage (k=24, M=500, all rule kinds): p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(times)} calls"
    )

    t0 = time.perf_counter()
    done = 0
    for start in range(0, len(users), 1000):
        done += len(homepages_for(users[start : start + 1000], rule_set, with_history=False))
    seconds = time.perf_counter() - t0
    print(f"batched: {done:,} homepages in {seconds:.1f} s = {done / seconds:,.0f} homepages/s")


if __name__ == "__main__":
    main()
