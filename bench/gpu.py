"""GPU benchmark (< 5 minutes): LSTM training throughput with sampled softmax + logQ over a 1M-item catalog,
and batch inference (bf16 autocast, top-100 with history exclusion). Synthetic Zipf-distributed sequences.

    python bench/gpu.py                 # needs CUDA; exits 0 with a message when there is none
    python bench/gpu.py --cpu-smoke     # tiny run on the CPU that only checks the code path

Uses only long-standing PyTorch APIs (nothing newer than 2.11).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.base import Histories  # noqa: E402
from models.infer import score_users  # noqa: E402
from models.lstm import LSTMConfig, LSTMRecommender  # noqa: E402
from models.train import SequenceData, _Batches, _log_q, _param_groups, left_pad  # noqa: E402


def zipf_sequences(n_users: int, n_items: int, rng: np.random.Generator) -> list[np.ndarray]:
    lengths = np.clip(rng.geometric(1 / 12, n_users), 3, 60)
    ranks = rng.zipf(1.2, size=int(lengths.sum()))
    flat = (ranks - 1) % n_items + 1
    return np.split(flat.astype(np.int64), np.cumsum(lengths)[:-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--train-seconds", type=float, default=90.0)
    ap.add_argument("--cpu-smoke", action="store_true")
    args = ap.parse_args()
    if args.cpu_smoke:
        dev = torch.device("cpu")
        args.items, args.users, args.batch, args.train_seconds = 200_000, 2_000, 128, 5.0
    elif not torch.cuda.is_available():
        print(
            "bench/gpu.py: no CUDA device here, nothing to measure (use --cpu-smoke to check the code path)."
        )
        return 0
    else:
        dev = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    seqs = zipf_sequences(args.users, args.items, rng)
    cfg = LSTMConfig(n_items=args.items, dim=args.dim, batch_size=args.batch)
    assert cfg.n_items > cfg.sampled_softmax_above, "this benchmark exercises sampled softmax"
    model = LSTMRecommender(cfg).to(dev)
    batches = _Batches(SequenceData(seqs), cfg.max_len)
    log_q = _log_q(batches, cfg.n_items).to(dev)
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    print(
        f"device {name}; catalog {args.items:,} items, dim {args.dim}, {len(seqs):,} synthetic users, "
        f"{cfg.n_negatives} shared negatives; setup {time.perf_counter() - t0:.1f}s"
    )

    # --- training throughput ---
    model.net.train()
    steps = positions = 0
    start = None
    for i, (inp, tgt, lens, _, _) in enumerate(batches.epoch(cfg.batch_size, rng)):
        inp, tgt = inp.to(dev, non_blocking=True), tgt.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = model.train_loss(inp, tgt, lens, log_q=log_q)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.net.parameters(), cfg.grad_clip)
        opt.step()
        if i == 2:  # skip warm-up steps
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        elif i > 2:
            steps += 1
            positions += int((tgt > 0).sum())
            if time.perf_counter() - start > args.train_seconds:
                break
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_train = time.perf_counter() - (start or time.perf_counter())
    print(f"{'train: steps/s':<40}{steps / max(t_train, 1e-9):>12.1f}")
    print(f"{'train: target positions/s':<40}{positions / max(t_train, 1e-9):>12,.0f}")
    print(f"{'train: last loss':<40}{float(loss.detach()):>12.3f}")

    # --- batch inference ---
    model.net.eval()
    n_inf = min(len(seqs), 50_000 if dev.type == "cuda" else 500)
    hist = left_pad(seqs[:n_inf], cfg.max_len)
    score_users(model, Histories(hist.items[:256]), batch_size=256, k=100, device=dev)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    score_users(model, hist, batch_size=args.batch, k=100, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_inf = time.perf_counter() - t0
    flops = n_inf * model.flops_per_user()
    print(f"{'infer: users/s (top-100, bf16 on cuda)':<40}{n_inf / t_inf:>12,.0f}")
    print(f"{'infer: output-layer TFLOP/s':<40}{flops / t_inf / 1e12:>12.2f}")
    if dev.type == "cuda":
        print(f"{'peak GPU memory (GiB)':<40}{torch.cuda.max_memory_allocated() / 2**30:>12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
