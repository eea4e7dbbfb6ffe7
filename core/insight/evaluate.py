"""Offline evaluation: leave-one-out splits, ranking metrics, two labelled protocols, the benchmark runner.

Protocols (every result row carries its ``protocol`` label):
  A  "A: full ranking, history excluded" (default) — the target is ranked against every catalog item except
     the ones already in the user's history (a target that is itself in the history counts as a miss).
  B  "B: target vs 100 sampled negatives" — SASRec's protocol: the target against 100 items drawn uniformly
     from those the user never interacted with (seeded).

Metrics (``models.metrics``, the path the trainer's early stopping uses too): HR@K, NDCG@K, MRR@K from 0-based
ranks; catalog coverage@K = distinct items in all users' top-K lists / n_items (protocol A only).

Public API
----------
``read_sequence_file(path) -> SequenceFile``  (``user_id item_id item_id …`` one line per user, time order)
``split_file(data, max_len=50) -> models.data.Split``
    leave-one-out (``models.data.leave_one_out``): train = all but the last 2 items, valid = second last,
    test = last
``evaluate(model, eval_set, protocol="A", ks=(10, 20), batch_size=1024, n_negatives=100, seed=0,
           split="test") -> dict``
``run_benchmark(path, time_budget_min=30, models=MODEL_NAMES, seed=1337, progress=None, protocols=("A", "B"),
                config=None) -> list[dict]``  every model as rows, the best on validation marked ``default``
``summarize(rows) -> list[dict]``  rows of several seeds → mean and standard deviation per (model, protocol)
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.config import settings
from core.errors import InputError
from core.training import check_trainable
from models.base import EvalSet, ProgressCallback, Recommender, SequenceData
from models.data import Split, leave_one_out
from models.layers import NeuralConfig
from models.metrics import metrics_from_ranks, rank_targets, validation_metrics
from models.registry import BLEND_NEURAL, MODELS, NEURAL, build, sized_config

PROTOCOLS = {
    "A": "A: full ranking, history excluded",
    "B": "B: target vs 100 sampled negatives",
}
MODEL_NAMES = ("mostpop", "itemknn", "ease", "lstm", "transformer", "blend")


@dataclass
class SequenceFile:
    user_ids: list[str]  # external user ids, one per sequence
    sequences: list[np.ndarray]  # dense item ids 1..n_items, time order
    item_ids: list[str]  # dense index -> external item id; item_ids[0] = "" (padding)

    @property
    def n_items(self) -> int:
        return len(self.item_ids) - 1


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


def split_file(data: SequenceFile, max_len: int = 50) -> Split:
    """Leave-one-out over the file's sequences; the catalog is every item in the file (some appear only as a
    held-out step)."""
    return leave_one_out(SequenceData(data.sequences, n_items=data.n_items), max_len)


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
    eval_set: EvalSet,
    protocol: str = "A",
    ks=(10, 20),
    batch_size: int = 1024,
    n_negatives: int = 100,
    seed: int = 0,
    split: str = "test",
) -> dict:
    """Metrics for any ``Recommender`` under protocol "A" or "B" (see module docstring)."""
    key = protocol.strip().upper()[:1]
    if key not in PROTOCOLS:
        raise ValueError(
            f"unknown protocol {protocol!r}; use 'A' (full ranking) or 'B' (100 sampled negatives)"
        )
    candidates = None
    if key == "B":
        rng = np.random.default_rng(seed)
        candidates = _sample_negatives(
            eval_set.histories.items, eval_set.targets, model.n_items, n_negatives, rng
        )
    ranks, tops = rank_targets(
        model, eval_set, candidates, top=max(ks) if key == "A" else 0, batch_size=batch_size
    )
    out = {"model": model.name, "protocol": PROTOCOLS[key], "split": split, "users": len(eval_set)}
    out.update(metrics_from_ranks(ranks, ks))
    if tops is not None:
        for k in ks:
            out[f"coverage@{k}"] = float(torch.unique(tops[:, :k]).numel() / max(model.n_items, 1))
    return out


def run_benchmark(
    path: str | os.PathLike,
    time_budget_min: float = 30.0,
    models=MODEL_NAMES,
    seed: int = 1337,
    progress: ProgressCallback | None = None,
    protocols=("A", "B"),
    config: NeuralConfig | None = None,
    budget_clock: str = "wall",
) -> list[dict]:
    """Leave-one-out benchmark on a sequence file, every model on the same split and the same masking.

    Each neural model trains for at most ``time_budget_min`` minutes (its config's defaults sized from the
    data, or ``config``), early-stopped on validation NDCG@10. The blend reuses the models trained for their
    own rows and learns its weights on the validation split. Every choice (epochs, settings, blend weights,
    the default model) is made on validation; then the count models (item-kNN, EASE, popularity, the blend's
    count parts) count again on every step but the test item (``Recommender.recounted``), and the test item
    is scored once per model, for the report. A model whose
    fit cannot take the catalog (``max_items``: EASE above 20,000 items) is skipped with a note. Returns one
    row per (model, protocol): model, protocol, hr@10, ndcg@10, hr@20, ndcg@20, mrr@10, mrr@20, coverage@10/20
    (protocol A), valid_ndcg@10, valid_hr@10, default (the best model on validation), train_seconds, users,
    n_items, seed."""
    torch.set_num_threads(settings().train_threads)
    data = read_sequence_file(path)
    check_trainable(data.sequences, source=str(path))
    split = split_file(data)
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown:
        raise InputError(
            f"unknown model(s) {', '.join(unknown)}", fix=f"choose from {', '.join(MODEL_NAMES)}"
        )
    models = _models_for_catalog(models, data.n_items, str(path))
    fitted: dict[str, Recommender] = {}
    for name in sorted(models, key=lambda m: m == "blend"):  # the blend last: it reuses the others
        cfg = _config(name, config, split.train, budget_clock)
        fitted[name] = _fit(name, split, data.n_items, seed, time_budget_min * 60.0, progress, cfg, fitted)
    valid = {name: validation_metrics(m, split.valid, ks=(10,)) for name, m in fitted.items()}
    default = max(valid, key=lambda name: valid[name]["ndcg@10"])
    # every choice is made: the count models count again on every step before the test item, as a shop's
    # model counts every step it has once its run is validated (``core.training``)
    # rows=[]: only the training part of this split is wanted, no validation histories are padded
    before_test = leave_one_out(SequenceData(data.sequences, n_items=data.n_items), test=False, rows=[]).train
    fitted = {name: model.recounted(before_test) for name, model in fitted.items()}
    rows = []
    for name, model in fitted.items():
        for p in protocols:
            t0 = time.perf_counter()
            res = evaluate(model, split.test, p, ks=(10, 20), seed=seed)
            res.update(
                model=name,
                valid_hr10=round(valid[name]["hr@10"], 4),
                valid_ndcg10=round(valid[name]["ndcg@10"], 4),
                default=name == default,
                train_seconds=round(float(model.train_seconds), 1),
                eval_seconds=round(time.perf_counter() - t0, 1),
                n_items=data.n_items,
                seed=seed,
            )
            rows.append(res)
    return rows


def _models_for_catalog(models, n_items: int, source: str) -> list[str]:
    """``models`` less those whose fit cannot take a catalog this large (EASE's item × item matrix), with a note
    on stderr naming each; none left is an ``InputError``."""
    kept = []
    for name in models:
        limit = MODELS[name].max_items
        if limit is not None and n_items > limit:
            print(
                f"note: {name} skipped: {source} has {n_items:,} items, {name} takes up to {limit:,}",
                file=sys.stderr,
            )
        else:
            kept.append(name)
    if not kept:
        raise InputError(
            f"{source}: no model asked for takes {n_items:,} items", fix="add itemknn or a neural model"
        )
    return kept


def _config(
    name: str, config: NeuralConfig | None, data: SequenceData, budget_clock: str
) -> NeuralConfig | None:
    """The config of ``name``'s neural model (the blend's own, when it trains one): ``config`` when it is of
    that model's class, else the defaults sized from the data; with the budget's clock."""
    neural = NEURAL.get(BLEND_NEURAL if name == "blend" else name)
    if neural is None:
        return None
    base = config if isinstance(config, neural.config_class) else sized_config(neural, data)
    return dataclasses.replace(base, budget_clock=budget_clock)


def _fit(name, split: Split, n_items: int, seed, budget_s, progress, config, fitted) -> Recommender:
    if name != "blend":
        model = build(name, n_items, seed=seed, config=config, data=split.train)
        return model.fit(split.train, split.valid, time_budget_s=budget_s, progress=progress)
    blend = build("blend", n_items, seed=seed, config=config, data=split.train, reuse=fitted)
    return blend.fit(split.train, split.valid, time_budget_s=budget_s, progress=progress)


def summarize(rows: list[dict], keys=("hr@10", "ndcg@10", "hr@20", "ndcg@20", "train_seconds")) -> list[dict]:
    """Rows of several seeds → one row per (model, protocol) with the mean and the standard deviation."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["protocol"]), []).append(r)
    out = []
    for (model, protocol), rs in groups.items():
        row = {
            "model": model,
            "protocol": protocol,
            "seeds": len(rs),
            "default": sum(r["default"] for r in rs),
        }
        for k in keys:
            values = np.array([r[k] for r in rs], dtype=float)
            row[k], row[k + "_std"] = float(values.mean()), float(values.std(ddof=1)) if len(rs) > 1 else 0.0
        out.append(row)
    return out
