"""GPU benchmark (< 5 minutes): training throughput of the LSTM and the transformer with sampled softmax + logQ
over a 1M-item catalog (bf16 autocast, as ``models.train`` trains on CUDA), and batch inference (bf16 autocast,
top-100 with history exclusion). Synthetic Zipf-distributed sequences.

    python bench/gpu.py                 # needs CUDA; exits 0 with a message when there is none
    python bench/gpu.py --cpu-smoke     # tiny run on the CPU that only checks the code path (run by the tests)
    python bench/gpu.py --models transformer --train-seconds 60

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

from models.base import Histories, SequenceData  # noqa: E402
from models.data import TrainBatches, left_pad  # noqa: E402
from models.infer import score_users  # noqa: E402
from models.neural import NeuralRecommender  # noqa: E402
from models.registry import NEURAL  # noqa: E402
from models.train import autocast, log_q, param_groups  # noqa: E402


def zipf_sequences(n_users: int, n_items: int, rng: np.random.Generator) -> list[np.ndarray]:
    lengths = np.clip(rng.geometric(1 / 12, n_users), 3, 60)
    ranks = rng.zipf(1.2, size=int(lengths.sum()))
    flat = (ranks - 1) % n_items + 1
    return np.split(flat.astype(np.int64), np.cumsum(lengths)[:-1])


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(model: NeuralRecommender, batches: TrainBatches, seconds: float, rng) -> dict:
    """Steps/s and target positions/s of the training step ``models.train`` runs, after 3 warm-up steps."""
    c, dev = model.config, model.device
    q = log_q(batches, c.n_items).to(dev)
    opt = torch.optim.AdamW(
        param_groups(model.net, c.weight_decay), lr=c.lr, fused=dev.type == "cuda" or None
    )
    model.net.train()
    steps = positions = 0
    start = loss = None
    for i, (inp, tgt, lens, _, _) in enumerate(batches.epoch(c.batch_size, rng)):
        inp, tgt = inp.to(dev, non_blocking=True), tgt.to(dev, non_blocking=True)
        with autocast(dev):
            loss = model.train_loss(inp, tgt, lens, log_q=q)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.net.parameters(), c.grad_clip)
        opt.step()
        if i == 2:  # skip warm-up steps
            sync(dev)
            start = time.perf_counter()
        elif i > 2:
            steps += 1
            positions += int((tgt > 0).sum())
            if time.perf_counter() - start > seconds:
                break
    sync(dev)
    elapsed = max(time.perf_counter() - (start or time.perf_counter()), 1e-9)
    return {"steps/s": steps / elapsed, "positions/s": positions / elapsed, "loss": float(loss.detach())}


def inference(model: NeuralRecommender, seqs: list[np.ndarray], batch: int) -> dict:
    """Users/s of top-100 scoring with history exclusion (bf16 autocast on CUDA), and the output layer's FLOP/s."""
    dev = model.device
    model.net.eval()
    n = min(len(seqs), 50_000 if dev.type == "cuda" else 200)
    hist = left_pad(seqs[:n], model.max_len)
    score_users(model, Histories(hist.items[:256]), batch_size=256, k=100, device=dev)  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    score_users(model, hist, batch_size=batch, k=100, device=dev)
    sync(dev)
    elapsed = time.perf_counter() - t0
    return {"users/s": n / elapsed, "TFLOP/s": n * model.flops_per_user() / elapsed / 1e12}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--train-seconds", type=float, default=60.0, help="per model")
    ap.add_argument("--models", default="lstm,transformer")
    ap.add_argument("--cpu-smoke", action="store_true")
    args = ap.parse_args()
    if args.cpu_smoke:
        dev = torch.device("cpu")
        args.items, args.users, args.batch, args.train_seconds, args.dim = 120_000, 300, 32, 1.0, 16
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
    t0 = time.perf_counter()
    seqs = zipf_sequences(args.users, args.items, rng)
    batches = TrainBatches(SequenceData(seqs, n_items=args.items), 50)
    print(
        f"device {name}; catalog {args.items:,} items, dim {args.dim}, {len(seqs):,} synthetic users; "
        f"setup {time.perf_counter() - t0:.1f}s"
    )
    for arch in args.models.split(","):
        cls = NEURAL[arch]
        cfg = cls.config_class(n_items=args.items, dim=args.dim, batch_size=args.batch, seed=0)
        assert cfg.n_items > cfg.sampled_softmax_above, "this benchmark exercises sampled softmax"
        model = cls(cfg).to(dev)
        tr = train_throughput(model, batches, args.train_seconds, np.random.default_rng(0))
        inf = inference(model, seqs, args.batch)
        print(f"[{arch}] {cfg.n_negatives} shared negatives")
        print(f"{'  train: steps/s':<44}{tr['steps/s']:>12.1f}")
        print(f"{'  train: target positions/s':<44}{tr['positions/s']:>12,.0f}")
        print(f"{'  train: last loss':<44}{tr['loss']:>12.3f}")
        print(f"{'  infer: users/s (top-100, bf16 on cuda)':<44}{inf['users/s']:>12,.0f}")
        print(f"{'  infer: output-layer TFLOP/s':<44}{inf['TFLOP/s']:>12.2f}")
        if dev.type == "cuda":
            print(f"{'  peak GPU memory (GiB)':<44}{torch.cuda.max_memory_allocated() / 2**30:>12.1f}")
            torch.cuda.reset_peak_memory_stats()
        del model
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
