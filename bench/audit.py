"""Bias audit of a whole population: where the time goes.

    .venv/bin/python bench/audit.py [--data DIR] [--users 20000] [--n-boot 100] [--profile-users 2000]

Uses the shop in ``--data`` (default: the app's ``data/``; the first-run demo shop is ``python -m core
first-run``, i.e. ``build_demo_shop()`` defaults and a first model). Audits "model" and "draft" (a draft
with one fairness rule for small sellers) for ``--users`` shoppers (all of them when the shop has fewer),
on the held-out copy of the store, and prints wall and CPU seconds per stage (CPU: ``time.process_time``,
this process's threads together, so it is the figure to read while other jobs share the machine):

- hold-out copy: building (first run on a store state) or reusing the copy without each user's last step
- homepages: ``population_homepages`` per chunk of 2,000 users (one forward pass and the top-M of the chunk
  at once, then the rules per user)
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
    ("models/neural.py", "score"): "scoring (one forward pass per chunk)",
    ("core/ranking/population.py", "top_m_batch"): "top-M of the whole chunk (numpy, at once)",
    ("core/ranking/homepage.py", "user_context"): "shopper context (mix, purchases), per user",
    ("core/ranking/homepage.py", "needed_for"): "rules' needed items (scopes), per user",
    ("core/ranking/candidates.py", "with_needed"): "candidates: top-M + rule pools, per user",
    ("core/ranking/pipeline.py", "homepage_items"): "rule pipeline (ruled list), per user",
    ("core/ranking/population.py", "_frame"): "lists → frames",
    ("core/ranking/population.py", "population_homepages"): "population_homepages in all",
}


class Stopwatch:
    """Wall and CPU seconds (this process, every thread) per stage."""

    def __init__(self):
        self.stages: dict[str, tuple[float, float]] = {}
        self.t = (time.perf_counter(), time.process_time())

    def lap(self, stage: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.stages[stage] = (now[0] - self.t[0], now[1] - self.t[1])
        self.t = now


def fairness_draft():
    from core.ranking.rules import Rule, RuleSet

    rule = Rule(
        rule_id="fair-small", kind="fairness", params={"condition": {"seller_tier": ["small"]}, "p": 0.3}
    )
    return RuleSet(rule_set_id="bench", version=1, name="fairness for small sellers", rules=[rule])


def profile_homepages(user_ids: list[str], db_path) -> None:
    """The audit's homepage stage on the held-out copy ``db_path``, as ``audit_inputs`` runs it."""
    from core.insight.audit_population import homepage_frames
    from core.model_runs import load_active_model
    from core.ranking.shop import held_out_context, read_shop

    ctx = held_out_context(read_shop(db_path), load_active_model(db_path))
    profiler = cProfile.Profile()
    profiler.enable()
    homepage_frames(user_ids, fairness_draft(), db_path=db_path, ctx=ctx)
    profiler.disable()
    # (file, line, function) → (calls, ncalls, tottime, cumtime, callers)
    stats = pstats.Stats(profiler).stats
    total = sum(
        v[3] for k, v in stats.items() if k[0].endswith("audit_population.py") and k[2] == "homepage_frames"
    )
    print(f"\nprofile of the homepage stage, {len(user_ids):,} users (cProfile, {total:.1f} s in all):")
    for (suffix, func), what in PARTS.items():
        cum = sum(v[3] for k, v in stats.items() if k[0].endswith(suffix) and k[2] == func)
        print(f"  {what:<48} {cum:6.2f} s  {1000 * cum / len(user_ids):6.2f} ms/homepage  {cum / total:5.0%}")


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
    from core.release.roles import SYSTEM

    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"shop: {store.scalar('SELECT count(*) FROM events'):,} events; uptime: {load}")
    watch = Stopwatch()
    path, _ = holdout_store()
    watch.lap("hold-out copy")
    inputs = audit_inputs(("model", "draft"), fairness_draft(), sample=args.users, seed=0, actor=SYSTEM)
    watch.t = (time.perf_counter(), time.process_time())
    inner = {
        "hold-out copy": "population (the copy's targets, the sample)",
        "snapshot": "snapshot (recounted model, items, steps)",
    }
    for stage in ("hold-out copy", "snapshot", "homepages", "frames"):
        watch.stages[inner.get(stage, stage)] = (inputs.timings[stage], inputs.cpu_timings[stage])
    build_report(inputs, n_boot=0)
    watch.lap("metrics (2 lists, no bootstrap)")
    report = build_report(inputs, n_boot=args.n_boot)
    watch.lap(f"metrics + bootstrap ({args.n_boot} resamples)")
    report_csv(report), report_html(report)
    watch.lap("exports (CSV + HTML)")
    stages = watch.stages
    users = inputs.homepages["model"]["user_id"].n_unique()
    # the audit: every stage but the metrics without bootstrap (a re-run of part of the next one)
    audit = [v for s, v in stages.items() if not s.startswith("metrics (")]
    wall, cpu = sum(v[0] for v in audit), sum(v[1] for v in audit)
    print(f"audit of {users:,} users, model + draft: {wall:.1f} s wall, {cpu:.1f} s CPU")
    print(f"  {'stage':<44} {'wall s':>7} {'CPU s':>7}")
    for stage, (w, c) in stages.items():
        print(f"  {stage:<44} {w:7.2f} {c:7.2f}")
    w, c = stages["homepages"]
    print(
        f"  per homepage pair (model + draft): {1000 * w / users:.2f} ms wall, {1000 * c / users:.2f} ms CPU"
    )
    if args.profile_users:
        _, held_out = holdout_store()
        profile_homepages(sorted(held_out["user_id"].to_list())[: args.profile_users], path)
    print(f"uptime at the end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
