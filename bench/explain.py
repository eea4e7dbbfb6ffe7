"""SHAP latency for one homepage slot ("why is this item in slot 3?") on demo-size models, CPU: the LSTM, the
transformer and the default blend (``models.registry.build("blend")``: BLEND_SEEDS transformer seeds + item-kNN +
EASE + popularity).

Each model over 5,000 items with the time-gap feature the app turns on: the ``LSTMRecommender`` and the
``TransformerRecommender`` with their default configs (max_len 50), untrained (speed does not depend on the
weights); the blend's item-kNN, EASE and popularity are fitted on 20,000 synthetic sequences, with weights 1 per
transformer seed / 0.5 per count / 0.1 for popularity. One user history of 20 and one of 50 real events (left-padded to max_len, as the
app builds them); one warm-up call (numba compiles shap's kernels once per process), then the median of ``--repeats`` calls.
Targets: <= 0.5 s (20 events), <= 2 s (50 events, permutation with the default budget).

    python bench/explain.py [--items 5000] [--repeats 7] [--threads N] [--homepage 24] [--models lstm,transformer,blend]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.sequences import N_GAP_BUCKETS  # noqa: E402
from core.insight.explain import explain_homepage, explain_item, warm_up  # noqa: E402
from models.base import EVENT_TYPES, Histories, Recommender, SequenceData  # noqa: E402
from models.blend import part_kind  # noqa: E402
from models.registry import blend_counts, build  # noqa: E402

TARGETS = {20: 0.5, 50: 2.0}


def history(n_events: int, max_len: int, n_items: int, rng: np.random.Generator) -> Histories:
    items = np.zeros((1, max_len), np.int64)
    ev = np.zeros((1, max_len), np.int64)
    gaps = np.zeros((1, max_len), np.int64)
    items[0, max_len - n_events :] = rng.integers(1, n_items + 1, n_events)
    ev[0, max_len - n_events :] = rng.integers(1, len(EVENT_TYPES) + 1, n_events)
    gaps[0, max_len - n_events :] = rng.integers(1, N_GAP_BUCKETS, n_events)
    return Histories(torch.from_numpy(items), torch.from_numpy(ev), torch.from_numpy(gaps))


def make_model(name: str, n_items: int, rng: np.random.Generator) -> Recommender:
    """An untrained neural model, or the blend of one with the counts (item-kNN, EASE, popularity) fitted on
    synthetic data."""
    neural = "transformer" if name == "blend" else name
    config = build(neural, n_items).config_class(n_gap_buckets=N_GAP_BUCKETS)
    model = build(neural, n_items, config=config)
    if name != "blend":
        return model
    seqs = [rng.integers(1, n_items + 1, int(rng.integers(3, 20))) for _ in range(20_000)]
    data = SequenceData(seqs, n_items=n_items)
    counts = {n: build(n, n_items).fit(data) for n in ("itemknn", *blend_counts(n_items), "mostpop")}
    blend = build("blend", n_items, config=config, reuse={neural: model, **counts})  # + the other seeds
    blend.weights = {
        n: 1.0 if part_kind(n) == neural else 0.1 if n == "mostpop" else 0.5 for n in blend.parts
    }
    return blend


def time_model(model: Recommender, args, rng: np.random.Generator) -> list[tuple]:
    rows = []
    for n_events in (20, 50):
        h = history(n_events, model.max_len, args.items, rng)
        item = int(rng.integers(1, args.items + 1))
        explain_item(model, h, item)  # warm-up on the real model
        times, e = [], None
        for r in range(args.repeats):
            t0 = time.perf_counter()
            e = explain_item(model, h, item, seed=r)
            times.append(time.perf_counter() - t0)
            assert e.check_additivity(), e.additivity_error
        rows.append(
            (model.name, n_events, len(e.players()), e.method, e.n_evals, e.n_model_calls)
            + (statistics.median(times), max(times), e.additivity_error)
        )
        if args.homepage:
            items = rng.choice(np.arange(1, args.items + 1), args.homepage, replace=False).tolist()
            explain_homepage(model, h, items)
            t = []
            for _ in range(max(1, args.repeats // 2)):
                t0 = time.perf_counter()
                explain_homepage(model, h, items)
                t.append(time.perf_counter() - t0)
            med = statistics.median(t)
            print(
                f"[{model.name}] explain_homepage, {n_events} events x {args.homepage} slots: median {med:.3f} s"
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--homepage", type=int, default=0, help="also time explain_homepage over this many slots")
    ap.add_argument("--models", default="lstm,transformer,blend")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"torch threads {torch.get_num_threads()}, CPU, {args.items:,} items")
    print(f"warm-up (numba compiles shap's kernels, once per process): {warm_up():.2f} s")
    rows = []
    for name in args.models.split(","):
        model = make_model(name, args.items, rng)
        print(f"{name}: {model!r}" if name != "blend" else f"blend: {model.weights}")
        rows += time_model(model, args, rng)
    print()
    print(
        f"{'model':>11} {'events':>6} {'features':>8} {'method':>11} {'evals':>6} {'calls':>5} {'median s':>9} "
        f"{'max s':>7} {'target s':>8} {'|additivity err|':>17}"
    )
    for name, n, f, m, ev, calls, med, mx, err in rows:
        ok = "ok" if med <= TARGETS[n] else "SLOW"
        print(
            f"{name:>11} {n:>6} {f:>8} {m:>11} {ev:>6} {calls:>5} {med:>9.3f} {mx:>7.3f} {TARGETS[n]:>6.1f} "
            f"{ok:>2} {err:>16.2e}"
        )


if __name__ == "__main__":
    main()
