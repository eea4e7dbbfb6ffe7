"""Offline evaluation: leave-one-out splits, ranking metrics, two labelled protocols, the benchmark runner.

Protocols (every result row carries its ``protocol`` label):
  A  "A: full ranking, history excluded" (default) — the target is ranked against every catalog item except
     the ones already in the user's history (a target that is itself in the history counts as a miss).
  B  "B: target vs 100 sampled negatives" — SASRec's protocol: the target against 100 items drawn uniformly
     from those the user never interacted with (seeded).

Metrics from 0-based ranks r: HR@K = [r < K]; NDCG@K = [r < K] / log2(r + 2); MRR@K = [r < K] / (r + 1);
catalog coverage@K = distinct items in all users' top-K lists / n_items (protocol A only).

Public API
----------
``read_sequence_file(path) -> SequenceFile``  (``user_id item_id item_id …`` one line per user, time order)
``leave_one_out(sequences, max_len=50) -> LOOSplit``
    train = all but the last 2 items, valid = second last, test = last
``evaluate(model, eval_data, protocol="A", ks=(10, 20), batch_size=1024, n_negatives=100, seed=0) -> dict``
``run_benchmark(path, time_budget_min=15, models=("lstm", "mostpop", "itemknn"), seed=1337, progress=None,
                protocols=("A", "B"), config=None) -> list[dict]``
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from core.config import settings
from core.errors import InputError
from models.base import Histories, Progress, ProgressCallback, Recommender
from models.baselines import ItemKNN, MostPop
from models.lstm import LSTMConfig
from models.train import EvalSet, SequenceData, fit, left_pad

PROTOCOLS = {
    "A": "A: full ranking, history excluded",
    "B": "B: target vs 100 sampled negatives",
}
MODEL_NAMES = ("lstm", "mostpop", "itemknn")


@dataclass
class SequenceFile:
    user_ids: list[str]  # external user ids, one per sequence
    sequences: list[np.ndarray]  # dense item ids 1..n_items, time order
    item_ids: list[str]  # dense index -> external item id; item_ids[0] = "" (padding)

    @property
    def n_items(self) -> int:
        return len(self.item_ids) - 1


@dataclass
class EvalData:
    histories: Histories  # (U, T) left-padded
    targets: torch.Tensor  # (U,) dense ids
    n_items: int
    name: str = "test"

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def as_eval_set(self) -> EvalSet:
        return EvalSet(self.histories, self.targets)


@dataclass
class LOOSplit:
    train: SequenceData  # all but the last 2 items per user
    valid: EvalData  # history = train part, target = second last
    test: EvalData  # history = train part + validation item, target = last
    n_items: int


def read_sequence_file(path: str | os.PathLike) -> SequenceFile:
    """Read ``user_id item_id item_id …`` lines; item ids get dense indices in order of first appearance."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", file=str(p), fix="pass the path of a sequence file")
    vocab: dict[str, int] = {}
    item_ids, users, seqs = [""], [], []
    with p.open("r", encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            tok = line.split()
            if not tok:
                continue
            if len(tok) < 2:
                raise InputError(
                    "a user line needs a user id followed by at least one item id",
                    file=str(p),
                    line=n,
                    fix="write `user_id item_id item_id …`, items in time order",
                )
            row = np.empty(len(tok) - 1, dtype=np.int64)
            for j, t in enumerate(tok[1:]):
                idx = vocab.get(t)
                if idx is None:
                    idx = vocab[t] = len(item_ids)
                    item_ids.append(t)
                row[j] = idx
            users.append(tok[0])
            seqs.append(row)
    if not seqs:
        raise InputError(
            "no user lines found", file=str(p), fix="one line per user: `user_id item_id item_id …`"
        )
    return SequenceFile(users, seqs, item_ids)


def leave_one_out(sequences: list, n_items: int | None = None, max_len: int = 50) -> LOOSplit:
    """Users with fewer than 3 items train only (they have no held-out items)."""
    seqs = [np.asarray(s, dtype=np.int64) for s in sequences]
    n = int(n_items or max((int(s.max()) for s in seqs if len(s)), default=0))
    train = [s[:-2] if len(s) >= 3 else s for s in seqs]
    held = [s for s in seqs if len(s) >= 3]
    valid = EvalData(
        left_pad([s[:-2] for s in held], max_len),
        torch.as_tensor([int(s[-2]) for s in held], dtype=torch.long),
        n,
        "valid",
    )
    test = EvalData(
        left_pad([s[:-1] for s in held], max_len),
        torch.as_tensor([int(s[-1]) for s in held], dtype=torch.long),
        n,
        "test",
    )
    return LOOSplit(SequenceData(train), valid, test, n)


def metrics_from_ranks(ranks: torch.Tensor, ks=(10, 20)) -> dict[str, float]:
    """HR@K, NDCG@K, MRR@K from 0-based ranks (U,)."""
    r = ranks.double()
    out = {}
    for k in ks:
        hit = r < k
        zero = torch.zeros((), dtype=torch.float64)
        out[f"hr@{k}"] = float(hit.double().mean()) if len(r) else 0.0
        out[f"ndcg@{k}"] = float(torch.where(hit, 1.0 / torch.log2(r + 2.0), zero).mean()) if len(r) else 0.0
        out[f"mrr@{k}"] = float(torch.where(hit, 1.0 / (r + 1.0), zero).mean()) if len(r) else 0.0
    return out


def _sample_negatives(
    items: torch.Tensor, targets: torch.Tensor, n_items: int, n_neg: int, rng: np.random.Generator
) -> torch.Tensor:
    """(B, n_neg) ids drawn uniformly from 1..n_items, none in the user's history or equal to the target."""
    B = items.shape[0]
    seen = [set(items[b][items[b] > 0].tolist()) | {int(targets[b])} for b in range(B)]
    out = rng.integers(1, n_items + 1, size=(B, n_neg))
    for b in range(B):
        s, row = seen[b], out[b]
        if len(s) >= n_items:
            raise ValueError("protocol B needs items the user has not seen")
        bad = np.fromiter((x in s for x in row), bool, n_neg)
        while bad.any():
            row[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
            bad = np.fromiter((x in s for x in row), bool, n_neg)
    return torch.as_tensor(out, dtype=torch.long)


def evaluate(
    model: Recommender,
    eval_data: EvalData,
    protocol: str = "A",
    ks=(10, 20),
    batch_size: int = 1024,
    n_negatives: int = 100,
    seed: int = 0,
) -> dict:
    """Metrics for any ``Recommender`` under protocol "A" or "B" (see module docstring)."""
    key = protocol.strip().upper()[:1]
    if key not in PROTOCOLS:
        raise ValueError(
            f"unknown protocol {protocol!r}; use 'A' (full ranking) or 'B' (100 sampled negatives)"
        )
    n_items, K = eval_data.n_items, max(ks)
    rng = np.random.default_rng(seed)
    ranks, tops = [], []
    with torch.inference_mode():
        for start in range(0, len(eval_data), batch_size):
            rows = slice(start, min(len(eval_data), start + batch_size))
            h = eval_data.histories.rows(rows)
            t = eval_data.targets[rows].long()
            s = model.score(h).float().cpu()  # (b, N+1)
            s[:, 0] = float("-inf")
            if key == "A":
                s.scatter_(1, h.items.long().cpu(), float("-inf"))
                ts = s.gather(1, t.unsqueeze(1))  # a target inside the history is masked: a miss
                r = (s > ts).sum(1)
                r = torch.where(torch.isneginf(ts.squeeze(1)), torch.full_like(r, n_items), r)
                tops.append(torch.topk(s, min(K, n_items), dim=1).indices)
            else:
                neg = _sample_negatives(h.items, t, n_items, n_negatives, rng)  # (b, n_neg)
                ts = s.gather(1, t.unsqueeze(1))  # (b, 1)
                r = (s.gather(1, neg) > ts).sum(1)
            ranks.append(r)
    ranks_t = torch.cat(ranks) if ranks else torch.empty(0, dtype=torch.long)
    out = {
        "model": model.name,
        "protocol": PROTOCOLS[key],
        "split": eval_data.name,
        "users": len(eval_data),
        **metrics_from_ranks(ranks_t, ks),
    }
    if key == "A" and tops:
        top = torch.cat(tops)
        for k in ks:
            out[f"coverage@{k}"] = float(torch.unique(top[:, :k]).numel() / max(n_items, 1))
    return out


def _make(name: str):
    if name == "mostpop":
        return MostPop()
    if name == "itemknn":
        return ItemKNN()
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")


def run_benchmark(
    path: str | os.PathLike,
    time_budget_min: float = 15.0,
    models=MODEL_NAMES,
    seed: int = 1337,
    progress: ProgressCallback | None = None,
    protocols=("A", "B"),
    config: LSTMConfig | None = None,
) -> list[dict]:
    """Leave-one-out benchmark on a sequence file. The LSTM trains with ``LSTMConfig`` defaults
    (or ``config``)
    for at most ``time_budget_min`` minutes, early-stopped on validation NDCG@10; results on the test item.
    Returns one row per (model, protocol): model, protocol, hr@10, ndcg@10, hr@20, ndcg@20, mrr@10, mrr@20,
    coverage@10/20 (protocol A), train_seconds, users, n_items."""
    torch.set_num_threads(settings().train_threads)
    data = read_sequence_file(path)
    cfg = replace(config) if config is not None else LSTMConfig()
    cfg.seed, cfg.n_items = seed, data.n_items
    split = leave_one_out(data.sequences, data.n_items, cfg.max_len)
    rows = []
    for name in models:
        if name == "lstm":
            model = fit(
                cfg,
                split.train,
                split.valid.as_eval_set(),
                time_budget_s=time_budget_min * 60.0,
                progress=progress,
            )
        else:
            model = _make(name).fit(split.train, n_items=data.n_items)
            if progress is not None:
                progress(Progress(stage="fit", epoch=0, step=1, steps_per_epoch=1, fraction=1.0))
        t_train = float(model.train_seconds)
        for p in protocols:
            t0 = time.perf_counter()
            res = evaluate(model, split.test, p, ks=(10, 20), seed=seed)
            res.update(
                model=name,
                train_seconds=round(t_train, 1),
                eval_seconds=round(time.perf_counter() - t0, 1),
                n_items=data.n_items,
            )
            rows.append(res)
    return rows
