"""Beyond accuracy (issue 15): does the default "For you" list reflect the whole shopper, and at what cost?

    HS_DATA=/tmp/ba/data .venv/bin/python -m core first-run      # the demo shop, first-run defaults
    .venv/bin/python bench/calibration.py --data /tmp/ba/data [--strengths 0.3,0.5] [--orders calibrated,ranked]
    .venv/bin/python bench/calibration.py --data /tmp/ba/data --run RUN_ID   # another of the shop's runs

For the default rule set (``core.ranking.defaults``), and for its calibration rule at each of ``--strengths``
and ``--orders`` (the rule's other parameters as the default's), against the model alone, on the same
candidates:

(a) among shoppers whose last 30 days (to the shop clock) span >= 3 top-level categories, the share that get
    >= 3 of them in the top 24 (target: most of them; reported against the model alone);
(b) the mean calibration KL (``core.ranking.metrics``) over ``--users`` shoppers (target <= 0.5);
(a) is also reported for the first half of the list, where the order decides what a shopper sees first.
(c) HR@10 on the demo validation split — each shopper's last step held out, the homepage ranked from the
    steps before it, a hit when the held-out item is in the first 10 slots — and its relative loss
    (target <= 5 %). The first-run model was trained without that last step (``core.training``).

Then the ranking cost of the default rule set's candidates: ms per homepage against the same rule choosing
from the best 4k candidates only, batched (``--time-users`` homepages) and one per call as the storefront
asks (200), alternating, median of 3.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

K = 24  # the default homepage
HR_K = 10
SPAN_DAYS, SPAN_MIN = 30, 3


def spanning_users(ctx, limit: int, seed: int) -> dict[str, set[str]]:
    """Shoppers whose last ``SPAN_DAYS`` span >= ``SPAN_MIN`` top-level categories → those categories."""
    from core.category_paths import top_level

    since = (ctx.now - timedelta(days=SPAN_DAYS)).timestamp()
    out = {}
    for user, items, ts in zip(ctx.steps.user_ids, ctx.steps.items, ctx.steps.ts):
        recent = items[(ts >= since) & (items > 0)]
        tops = {top_level(c) for c in ctx.categories[recent] if c != "unknown"}
        if len(tops) >= SPAN_MIN:
            out[user] = tops
    rng = np.random.default_rng(seed)
    keep = sorted(rng.choice(sorted(out), min(limit, len(out)), replace=False).tolist()) if out else []
    return {u: out[u] for u in keep}


def validation_context(ctx):
    """The snapshot with each shopper's last step held out (shoppers with enough steps), the model's counts
    counted again without those steps, and the held-out items by shopper."""
    from core.ranking.shop import held_out_context, read_shop
    from models.data import MIN_STEPS

    frames = read_shop()
    steps = frames.steps.filter(pl.col("items").list.len() >= MIN_STEPS)
    held = dict(zip(steps["user_id"].to_list(), steps["items"].list.last().to_list()))
    cut = {c: pl.col(c).list.head(pl.col(c).list.len() - 1) for c in ("items", "evs", "ts")}
    frames.steps = frames.steps.with_columns(
        **{
            c: pl.when(pl.col("items").list.len() >= MIN_STEPS).then(e).otherwise(pl.col(c))
            for c, e in cut.items()
        }
    )
    return held_out_context(frames, ctx.active), held


def measure(rule_set, ctx, users, spans, vctx, held, hr_users) -> dict:
    from core.category_paths import top_level
    from core.ranking.homepage import homepages_for
    from core.ranking.metrics import list_metrics

    out: dict = {}
    views = homepages_for(users, rule_set, k=K, ctx=ctx)
    out["kl_model"] = np.mean(
        [list_metrics(v.model_only, v.pool, rule_set, v.user)["calibration_kl"] for v in views]
    )
    out["kl_rules"] = np.mean([v.metrics["calibration_kl"] for v in views])
    for name in ("model", "rules"):
        covered, first_half = [], []
        for v in homepages_for(list(spans), rule_set, k=K, ctx=ctx):
            page = v.model_only if name == "model" else v.ruled
            tops = [top_level(c) for c in ctx.categories[ctx.active.catalog.vocab.encode(page.item_ids)]]
            covered.append(len(set(tops) & spans[v.user_id]) >= SPAN_MIN)
            first_half.append(len(set(tops[: K // 2]) & spans[v.user_id]) >= SPAN_MIN)
        out[f"span_{name}"] = float(np.mean(covered)) if covered else float("nan")
        out[f"half_{name}"] = float(np.mean(first_half)) if first_half else float("nan")
    hits = {"model": [], "rules": []}
    for start in range(0, len(hr_users), 1000):
        for v in homepages_for(hr_users[start : start + 1000], rule_set, k=K, ctx=vctx):
            target = held[v.user_id]
            hits["model"].append(target in v.model_only.item_ids[:HR_K])
            hits["rules"].append(target in v.ruled.item_ids[:HR_K])
    out["hr_model"], out["hr_rules"] = float(np.mean(hits["model"])), float(np.mean(hits["rules"]))
    out["hr_loss"] = 1 - out["hr_rules"] / out["hr_model"] if out["hr_model"] else float("nan")
    return out


def variants(default, strengths: str, orders: str) -> list[tuple[str, object]]:
    """The default rule set, then its calibration rule at each strength and order (its other parameters kept)."""
    from core.ranking.rules import Rule, RuleSet

    out = [("default", default)]
    base = default.rules[0].params
    for order in [o for o in orders.split(",") if o] or [base["order"]]:
        for strength in [float(x) for x in strengths.split(",") if x] or [base["strength"]]:
            params = {**base, "strength": strength, "order": order}
            if params != base:
                out.append((f"λ={strength:g} {order}", RuleSet(rules=[Rule("cal", "calibration", params)])))
    return out


def candidate_cost(default, ctx, users: list[str], rounds: int = 3) -> str:
    """ms per homepage for the default rule set against the same rule choosing from the best 4k candidates
    only (pool best: no group candidates): batched (``homepages_for`` over ``users``) and one shopper per
    call as the storefront asks (the first 200 of them), alternating, median of ``rounds``."""
    from core.ranking.homepage import homepages_for
    from core.ranking.rules import Rule, RuleSet

    best = RuleSet(rules=[Rule("cal", "calibration", {**default.rules[0].params, "pool": "best"})])
    sets = {"default": default, "pool best": best}
    ways = {"batched": lambda rs: homepages_for(users, rs, k=K, ctx=ctx)}
    ways["one per call"] = lambda rs: [homepages_for([u], rs, k=K, ctx=ctx) for u in users[:200]]
    times = {(way, name): [] for way in ways for name in sets}
    homepages_for(users[:50], default, k=K, ctx=ctx)  # warm the caches both share
    for r in range(rounds):
        for way, name in sorted(times, reverse=r % 2 == 1):
            t0 = time.perf_counter()
            n = len(ways[way](sets[name]))
            times[way, name].append((time.perf_counter() - t0) * 1000 / n)
    mid = {key: statistics.median(t) for key, t in times.items()}
    return (
        "; ".join(
            f"{way}: default {mid[way, 'default']:.2f} ms, pool best {mid[way, 'pool best']:.2f} ms per homepage "
            f"(ratio {mid[way, 'default'] / mid[way, 'pool best']:.2f})"
            for way in ways
        )
        + f" — median of {rounds}, {len(users)} batched, 200 one per call"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=os.environ.get("HS_DATA", "data"))
    parser.add_argument("--users", type=int, default=500, help="shoppers for the calibration KL")
    parser.add_argument("--span-users", type=int, default=500, help="multi-interest shoppers for (a)")
    parser.add_argument("--hr-users", type=int, default=5000, help="shoppers of the validation split for (c)")
    parser.add_argument("--strengths", default="", help="calibration strengths to try besides the default")
    parser.add_argument("--orders", default="", help="calibration orders to try (default: the default's)")
    parser.add_argument("--run", default="", help="rank with this finished run instead of the active one")
    parser.add_argument("--time-users", type=int, default=1000, help="homepages per timing round (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.environ["HS_DATA"] = str(Path(args.data).resolve())
    os.environ["HS_DB"] = str(Path(args.data).resolve() / "shop.duckdb")

    from core.model_runs import load_run_model
    from core.ranking.defaults import default_rule_set
    from core.ranking.impact import sample_users
    from core.ranking.shop import build_context, read_shop, shop_context

    t0 = time.perf_counter()
    ctx = build_context(read_shop(), load_run_model(args.run)) if args.run else shop_context()
    users = sample_users(args.users, seed=args.seed)
    spans = spanning_users(ctx, args.span_users, args.seed)
    vctx, held = validation_context(ctx)
    rng = np.random.default_rng(args.seed)
    hr_users = sorted(rng.choice(sorted(held), min(args.hr_users, len(held)), replace=False).tolist())
    print(
        f"shop: {ctx.active.catalog.n_items:,} items, {len(ctx.steps.user_ids):,} shoppers; {ctx.active.label}; "
        f"{len(spans)} shoppers span >= {SPAN_MIN} top levels in {SPAN_DAYS} days (sampled); "
        f"{len(hr_users)} validation shoppers; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    default = default_rule_set()
    print(
        f"rule set         | ≥3 of their top levels in {K} (model → rules; in the first {K // 2}) | KL (model → rules)"
        " | HR@10 (model → rules, loss)"
    )
    for name, rule_set in variants(default, args.strengths, args.orders):
        m = measure(rule_set, ctx, users, spans, vctx, held, hr_users)
        print(
            f"{name:16} | {m['span_model']:.1%} → {m['span_rules']:.1%}; {m['half_model']:.1%} → {m['half_rules']:.1%}"
            f" | {m['kl_model']:.3f} → {m['kl_rules']:.3f}"
            f" {'met' if m['kl_rules'] <= 0.5 else 'NOT met'} | {m['hr_model']:.4f} → {m['hr_rules']:.4f},"
            f" {m['hr_loss']:.1%} {'met' if m['hr_loss'] <= 0.05 else 'NOT met'}",
            flush=True,
        )
    if args.time_users:
        print(candidate_cost(default, ctx, hr_users[: args.time_users]), flush=True)
    print(f"{time.perf_counter() - t0:.0f} s; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
