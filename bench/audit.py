"""Bias audit of a whole population: where the time goes.

    .venv/bin/python bench/audit.py [--data DIR] [--users 20000] [--n-boot 100] [--profile-users 2000]

Uses the shop in ``--data`` (default: the app's ``data/``; the first-run demo shop is ``python -m core
first-run``, i.e. ``build_demo_shop()`` defaults and a first model). Audits "model" and "draft" (a draft
with one fairness rule for small sellers) for ``--users`` shoppers (all of them when the shop has fewer),
on the held-out copy of the store, and prints seconds per stage:

- hold-out copy: building (first run on a store state) or reusing the copy without each user's last step
- homepages: batched ``homepages_for`` (one forward pass per chunk of 2,000 users, then the per-user rules)
- frames: items, users and history from the store
- metrics: every metric without bootstrap; then with the bootstrap intervals (scipy, per user group)
- exports: CSV and HTML

Then it profiles the homepage stage on ``--profile-users`` shoppers (cProfile: Python-heavy parts look
slower than they are, so read the split as shares) and prints the cost per homepage of its parts.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PARTS = {  # profile entry (file suffix, function) → what it is
    ("models/lstm.py", "score"): "scoring (one forward pass per chunk)",
    ("core/ranking/homepage.py", "_candidates"): "candidates (top-M + rule pools, per user)",
    ("core/ranking/pipeline.py", "rank_homepage"): "rule pipeline (per user)",
    ("core/ranking/pipeline.py", "model_only"): "model-only list (per user)",
    ("core/ranking/pipeline.py", "list_metrics"): "list metrics for the preview (per user)",
    ("core/ranking/homepage.py", "homepages_for"): "homepages_for in all",
}


def fairness_draft():
    from core.ranking.rules import Rule, RuleSet

    rule = Rule(
        rule_id="fair-small", kind="fairness", params={"condition": {"seller_tier": ["small"]}, "p": 0.3}
    )
    return RuleSet(rule_set_id="bench", version=1, name="fairness for small sellers", rules=[rule])


def profile_homepages(user_ids: list[str], db_path) -> None:
    from core.insight.audit_population import homepage_frames

    profiler = cProfile.Profile()
    profiler.enable()
    homepage_frames(user_ids, fairness_draft(), db_path=db_path)
    profiler.disable()
    stats = pstats.Stats(
        profiler
    ).stats  # (file, line, function) → (calls, ncalls, tottime, cumtime, callers)
    total = sum(
        v[3] for k, v in stats.items() if k[0].endswith("audit_population.py") and k[2] == "homepage_frames"
    )
    print(f"\nprofile of the homepage stage, {len(user_ids):,} users (cProfile, {total:.1f} s in all):")
    for (suffix, func), what in PARTS.items():
        cum = sum(v[3] for k, v in stats.items() if k[0].endswith(suffix) and k[2] == func)
        print(f"  {what:<48} {cum:6.1f} s  {1000 * cum / len(user_ids):6.2f} ms/homepage  {cum / total:5.0%}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("HS_DATA", "data"))
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--profile-users", type=int, default=2000, help="0: skip the profile")
    args = parser.parse_args()
    os.environ["HS_DATA"] = str(Path(args.data).resolve())
    os.environ["HS_DB"] = str(Path(args.data).resolve() / "shop.duckdb")

    from core import store
    from core.insight.audit_export import report_csv, report_html
    from core.insight.audit_population import audit_inputs, holdout_store
    from core.insight.audit_report import build_report
    from core.ranking.homepage import shop_context
    from core.release.roles import SYSTEM

    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"shop: {store.scalar('SELECT count(*) FROM events'):,} events; uptime: {load}")
    started = time.perf_counter()
    path, _ = holdout_store()
    stages = {"hold-out copy": time.perf_counter() - started}
    t0 = time.perf_counter()
    shop_context(path)  # what the first homepages_for call on the copy loads; timed on its own
    stages["snapshot of the copy (model, items, steps)"] = time.perf_counter() - t0
    inputs = audit_inputs(("model", "draft"), fairness_draft(), sample=args.users, seed=0, actor=SYSTEM)
    stages.update({k: v for k, v in inputs.timings.items() if k != "hold-out copy"})
    t0 = time.perf_counter()
    build_report(inputs, n_boot=0)
    stages["metrics (2 lists, no bootstrap)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = build_report(inputs, n_boot=args.n_boot)
    stages[f"metrics + bootstrap ({args.n_boot} resamples)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report_csv(report), report_html(report)
    stages["exports (CSV + HTML)"] = time.perf_counter() - t0
    total = time.perf_counter() - started - stages["metrics (2 lists, no bootstrap)"]  # that one is a re-run
    users = inputs.homepages["model"]["user_id"].n_unique()
    print(f"audit of {users:,} users, model + draft: {total:.1f} s")
    for stage, seconds in stages.items():
        print(f"  {stage:<40} {seconds:7.1f} s")
    if args.profile_users:
        _, held_out = holdout_store()
        profile_homepages(sorted(held_out["user_id"].to_list())[: args.profile_users], path)
    print(f"uptime at the end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
