"""Amazon Beauty leave-one-out benchmark: MostPop, item-kNN, LSTM, transformer and their blend (the same code
as ``python -m core bench``); protocols A and B; the best on validation is starred.

python bench/beauty.py [--data ../shared/data/benchmarks/amazon-beauty.txt] [--time-budget 30] [--json]
python bench/beauty.py --quick     # make bench: 2 minutes per neural model, the transformer and the blend
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.insight.evaluate import MODEL_NAMES, run_benchmark  # noqa: E402
from models.base import Progress  # noqa: E402

DEFAULT = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks" / "amazon-beauty.txt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT)
    ap.add_argument("--time-budget", type=float, default=30.0, help="minutes of training per neural model")
    ap.add_argument("--models", default=",".join(MODEL_NAMES))
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 minutes, no LSTM row (make bench)")
    args = ap.parse_args()
    if args.quick:
        args.time_budget, args.models = 2.0, "mostpop,itemknn,transformer,blend"
    if not Path(args.data).is_file():
        sys.exit(f"{args.data}: no such file — pass --data with a sequence file (user_id item_id … per line)")

    def progress(p: Progress) -> None:
        if p.metrics and not args.json:
            shown = {k: round(v, 4) for k, v in p.metrics.items()}
            print(f"  [{p.stage}] epoch {p.epoch + 1} {shown}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    rows = run_benchmark(args.data, args.time_budget, tuple(args.models.split(",")), args.seed, progress)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    cols = [
        "model",
        "protocol",
        "hr@10",
        "ndcg@10",
        "hr@20",
        "ndcg@20",
        "coverage@10",
        "valid_ndcg10",
        "default",
    ]
    cols.append("train_seconds")
    print(" | ".join(cols))
    for r in rows:
        print(
            " | ".join(
                f"{r[c]:.4f}" if isinstance(r.get(c), float) and c != "train_seconds" else str(r.get(c, "-"))
                for c in cols
            )
        )
    print(f"total wall time {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
