"""Inference benchmark for the LSTM recommender (untrained weights: speed does not depend on them).

(a) one user's top-100 over a 50k-item catalog: p50 / p95 latency (target p50 <= 10 ms on CPU);
(b) all-users batch scoring: users/s, and achieved FLOP/s as a share of a plain ``torch.matmul`` of the
    same (batch, D) x (D, N+1) shape measured in the same run (target >= 50%).

    python bench/infer.py [--items 50000] [--users 20000] [--batch 1024] [--dim 128] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import settings  # noqa: E402
from models.base import Histories  # noqa: E402
from models.infer import pick_device, score_users  # noqa: E402
from models.lstm import LSTMConfig, LSTMRecommender  # noqa: E402


def histories(n_users: int, n_items: int, max_len: int, rng: np.random.Generator) -> Histories:
    lengths = np.clip(rng.geometric(1 / 9, n_users), 1, max_len)  # median ~6, like Amazon Beauty
    items = np.zeros((n_users, max_len), np.int64)
    for u, L in enumerate(lengths):
        items[u, max_len - L :] = rng.integers(1, n_items + 1, L)
    return Histories(torch.from_numpy(items))


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--dim", type=int, default=LSTMConfig.dim)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument(
        "--threads",
        type=int,
        default=settings().train_threads,
        help="torch threads for batch scoring (b)",
    )
    ap.add_argument(
        "--serve-threads",
        type=int,
        default=settings().infer_threads,
        help="torch threads for one user (a): the app's serving setting, HS_INFER_THREADS",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = pick_device(settings().device)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = LSTMConfig(n_items=args.items, dim=args.dim)
    model = LSTMRecommender(cfg).to(dev)
    D, N1 = cfg.dim, cfg.n_items + 1

    # (a) single-user latency, top-100 with the history excluded
    one = histories(1, args.items, cfg.max_len, rng)
    one.items[0, -20:] = torch.from_numpy(rng.integers(1, args.items + 1, 20))

    def latency(threads: int) -> tuple[float, float]:
        torch.set_num_threads(threads)
        for _ in range(10):
            score_users(model, one, k=100, device=dev)
        lat = []
        for _ in range(args.reps):
            sync(dev)
            t0 = time.perf_counter()
            score_users(model, one, k=100, device=dev)
            sync(dev)
            lat.append((time.perf_counter() - t0) * 1000)
        return float(np.percentile(lat, 50)), float(np.percentile(lat, 95))

    # one user is a 1 x D x (N+1) matrix-vector product: memory-bound, fastest on one thread, which is how
    # the app serves (HS_INFER_THREADS); the batch threads are shown beside it
    p50, p95 = latency(args.serve_threads)
    lat_n = latency(args.threads)
    torch.set_num_threads(args.threads)

    # (b) batch scoring throughput vs a plain matmul of the output-layer shape
    hist = histories(args.users, args.items, cfg.max_len, rng)
    score_users(
        model, Histories(hist.items[: args.batch]), batch_size=args.batch, k=100, device=dev
    )  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    score_users(model, hist, batch_size=args.batch, k=100, device=dev)
    sync(dev)
    t_all = time.perf_counter() - t0
    steps = int((hist.items > 0).sum())
    flops_out = args.users * model.flops_per_user()  # h @ E^T
    flops_lstm = 2.0 * steps * 4 * D * (2 * D)  # 4 gates, input + recurrent matmuls
    achieved = (flops_out + flops_lstm) / t_all

    a = torch.randn(args.batch, D, device=dev)
    b = torch.randn(D, N1, device=dev)
    for _ in range(3):
        torch.matmul(a, b)
    reps = max(3, args.users // args.batch)
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.matmul(a, b)
    sync(dev)
    peak = 2.0 * args.batch * D * N1 * reps / (time.perf_counter() - t0)

    print(f"device {dev.type}, catalog {args.items:,} items, dim {D}")
    print(f"{'measure':<44}{'value':>14}  target")
    print(f"{f'(a) one user top-100, p50, {args.serve_threads} thread(s)':<44}{p50:>11.2f} ms  <= 10 ms")
    print(f"{'(a) one user top-100, p95':<44}{p95:>11.2f} ms")
    print(f"{f'(a) same on {args.threads} thread(s), p50 / p95':<44}{lat_n[0]:>6.2f} / {lat_n[1]:.2f} ms")
    print(
        f"{f'(b) all users ({args.users:,}), batch {args.batch}, {args.threads} thr':<44}{args.users / t_all:>9,.0f} users/s"
    )
    print(f"{'(b) achieved (output layer + LSTM)':<44}{achieved / 1e9:>9.1f} GFLOP/s")
    print(f"{'(b) plain matmul, same shape':<44}{peak / 1e9:>9.1f} GFLOP/s")
    print(f"{'(b) achieved / matmul':<44}{100 * achieved / peak:>11.0f} %   >= 50 %")


if __name__ == "__main__":
    main()
