"""Homepage CPU time, this checkout against another, interleaved: for a machine too busy for wall-clock runs.

    .venv/bin/python bench/homepage_cpu.py --other /tmp/before --data DIR [--rounds 12] [--users 3000]

Two worker processes, one per checkout (each imports its own ``core``), load the same shop once, then take
turns: a batch of 200 homepages (``homepages_for``) and 20 single ones (``homepage_for``), the same users
for both, the order alternating every round. Each turn reports the process CPU time it used, which other
processes on the machine disturb far less than wall time, and turns that alternate every few seconds see
the same load. Prints the median CPU time per turn and the median and quartiles of the per-round ratios
(this / other). The rule set is ``bench/homepage.py``'s, written in the form both versions read
(calibration as a diversity parameter).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def worker(code: Path, users: int) -> None:
    """(child) Serve turns on stdin: 'batch N' or 'single N' → CPU seconds on stdout."""
    sys.path.insert(0, str(code))
    from core.ranking.homepage import homepage_for, homepages_for, shop_context
    from core.ranking.impact import sample_users
    from core.ranking.rules import Rule, RuleSet

    ids = shop_context().active.catalog.vocab.item_ids
    rules = [
        Rule("pin", "pin", {"item_id": ids[0], "slot": 3}),
        Rule("block", "block", {"condition": {"item_id": [ids[1]]}}),
        Rule("boost", "boost", {"condition": {"new_days": 14}, "factor": 1.3}),
        Rule("bury", "bury", {"condition": {"price_max": 5.0}, "factor": 0.7}),
        Rule("reserve", "reserve", {"condition": {"promoted": True}, "slots": 2}),
        Rule("cap", "cap", {"attribute": "brand", "max": 3}),
        Rule("diversity", "diversity", {"method": "dpp", "theta": 0.7, "calibration": 0.3}),
        Rule("fairness", "fairness", {"condition": {"seller_tier": "small"}, "p": 0.25, "alpha": 0.1}),
    ]
    rule_set = RuleSet(rule_set_id="bench", version=1, rules=rules)
    people = sample_users(users, seed=1)
    homepages_for(people[:100], rule_set)
    for u in people[:5]:
        homepage_for(u, rule_set)
    print("ready", flush=True)
    for line in sys.stdin:
        kind, start = line.split()
        n0 = int(start) % max(1, len(people) - 200)
        t0 = time.process_time()
        if kind == "batch":
            homepages_for(people[n0 : n0 + 200], rule_set)
        else:
            for u in people[n0 : n0 + 20]:
                homepage_for(u, rule_set)
        print(time.process_time() - t0, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--other", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("HS_DATA", "data")))
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = args.data.resolve()
    os.environ["HS_DATA"], os.environ["HS_DB"] = str(data), str(data / "shop.duckdb")
    if args.worker:
        worker(args.worker, args.users)
        return
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                str(HERE),
                "--other",
                str(args.other),
                "--data",
                str(data),
                "--users",
                str(args.users),
                "--worker",
                str(code),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=code,
        )
        for name, code in (("other", args.other.resolve()), ("this", HERE.parent.parent))
    }
    for p in procs.values():
        assert p.stdout.readline().strip() == "ready"
    cpu = {(k, n): [] for k in ("batch", "single") for n in procs}
    ratios: dict[str, list[float]] = {"batch": [], "single": []}
    for rnd in range(args.rounds):
        for kind in ("batch", "single"):
            got = {}
            for name in ("other", "this") if rnd % 2 == 0 else ("this", "other"):
                procs[name].stdin.write(f"{kind} {rnd * 200}\n")
                procs[name].stdin.flush()
                got[name] = float(procs[name].stdout.readline())
                cpu[(kind, name)].append(got[name])
            ratios[kind].append(got["this"] / got["other"])
    for p in procs.values():
        p.stdin.close()
        p.wait()
    for kind, what in (("batch", "200 homepages (homepages_for)"), ("single", "20 × homepage_for")):
        q = statistics.quantiles(ratios[kind], n=4)
        print(
            f"{what}: CPU s median other {statistics.median(cpu[(kind, 'other')]):.3f}, this "
            f"{statistics.median(cpu[(kind, 'this')]):.3f}; this / other median {statistics.median(ratios[kind]):.3f} "
            f"(quartiles {q[0]:.3f}–{q[2]:.3f}) over {args.rounds} rounds"
        )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
