"""Training loop for ``LSTMRecommender``: pretrain, fine-tune, early stopping, save / load.

Public API
----------
``SequenceData(items, event_types=None, gaps=None, target_mask=None)``
    Training sequences, one numpy array per user in time order (dense ids 1..N). ``target_mask[u][t]``
    (bool) says whether the event at position t may serve as a *target*; None = every position.
``EvalSet(histories, targets)``
    Left-padded ``Histories`` and one held-out target id per row (leave-one-out); ``EvalSet.from_sequences``.
``fit(config, train, valid=None, side=None, *, time_budget_s=None, progress=None, progress_every=50,
      device=None) -> LSTMRecommender``
    Pretrain on all behaviour: predict the next item at every real position. AdamW, linear warm-up then
    cosine decay, gradient clipping, early stopping on validation NDCG@10 (full ranking, history excluded)
    keeping the best weights. The schedule is re-planned after the first epoch to fit ``time_budget_s``.
``finetune(model, train, valid=None, *, lr=None, max_epochs=None, time_budget_s=None, progress=None,
           progress_every=50, device=None) -> LSTMRecommender``
    Continue from pretrained weights at ``lr`` (default ``config.lr * config.finetune_lr_scale``) on the
    positions that ``train.target_mask`` selects (e.g. targets that are add_to_cart / purchase). Progress
    reports carry stage ``"finetune"``.
``save_run(model, directory, meta=None)`` / ``load_run(directory, device=None)``
    ``model.pt`` (state dict, loaded with ``weights_only=True``) + ``config.json``; a round trip gives
    identical scores. ``save`` / ``load`` are aliases.
``pick_device(name=None)``: ``name``, else cuda → mps → cpu.

The fitted model carries ``model.history`` (list of per-epoch dicts) and ``model.train_seconds``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from models.base import Histories, ItemSide, Progress, ProgressCallback
from models.infer import pick_device, ranks_of_targets
from models.lstm import LSTMConfig, LSTMRecommender

__all__ = [
    "SequenceData",
    "EvalSet",
    "fit",
    "finetune",
    "save_run",
    "load_run",
    "pick_device",
]


@dataclass
class SequenceData:
    items: list[np.ndarray]
    event_types: list[np.ndarray] | None = None
    gaps: list[np.ndarray] | None = None
    target_mask: list[np.ndarray] | None = None


@dataclass
class EvalSet:
    histories: Histories  # (U, T) left-padded
    targets: torch.Tensor  # (U,) long

    @staticmethod
    def from_sequences(
        histories: list, targets, max_len: int = 50, event_types: list | None = None, gaps: list | None = None
    ) -> EvalSet:
        return EvalSet(
            left_pad(histories, max_len, event_types, gaps),
            torch.as_tensor(np.asarray(targets), dtype=torch.long),
        )

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def left_pad(
    seqs: list, max_len: int, event_types: list | None = None, gaps: list | None = None
) -> Histories:
    """Lists of id sequences -> left-padded ``Histories`` keeping the ``max_len`` most recent."""

    def pad(rows):
        out = np.zeros((len(rows), max_len), dtype=np.int64)
        for i, r in enumerate(rows):
            r = np.asarray(r, dtype=np.int64)[-max_len:]
            if len(r):
                out[i, max_len - len(r) :] = r
        return torch.from_numpy(out)

    return Histories(
        pad(seqs), None if event_types is None else pad(event_types), None if gaps is None else pad(gaps)
    )


class _Batches:
    """Next-item pairs per sequence, left-aligned in fixed arrays; batches of similar length."""

    def __init__(self, data: SequenceData, max_len: int):
        keep = []
        for u, s in enumerate(data.items):
            if len(s) >= 2:
                keep.append(u)
        n, T = len(keep), max_len
        self.inp = np.zeros((n, T), np.int64)
        self.tgt = np.zeros((n, T), np.int64)
        self.ev = np.zeros((n, T), np.int64) if data.event_types is not None else None
        self.gap = np.zeros((n, T), np.int64) if data.gaps is not None else None
        self.len = np.zeros(n, np.int64)
        for i, u in enumerate(keep):
            s = np.asarray(data.items[u], np.int64)[-(T + 1) :]
            L = len(s) - 1
            self.inp[i, :L] = s[:-1]
            t = s[1:].copy()
            if data.target_mask is not None:
                m = np.asarray(data.target_mask[u], bool)[-(T + 1) :][1:]
                t = t * m
            self.tgt[i, :L] = t
            if self.ev is not None:
                self.ev[i, :L] = np.asarray(data.event_types[u], np.int64)[-(T + 1) :][:-1]
            if self.gap is not None:
                self.gap[i, :L] = np.asarray(data.gaps[u], np.int64)[-(T + 1) :][:-1]
            self.len[i] = L
        has_target = (self.tgt > 0).any(1)
        sel = np.nonzero(has_target)[0]
        for name in ("inp", "tgt", "ev", "gap", "len"):
            a = getattr(self, name)
            if a is not None:
                setattr(self, name, a[sel])

    def __len__(self) -> int:
        return len(self.len)

    def epoch(self, batch_size: int, rng: np.random.Generator):
        """Shuffle, sort chunks of 50 batches by length (little padding), shuffle the batch order."""
        perm = rng.permutation(len(self.len))
        chunk = batch_size * 50
        batches = []
        for s in range(0, len(perm), chunk):
            c = perm[s : s + chunk]
            c = c[np.argsort(self.len[c], kind="stable")]
            batches += [c[i : i + batch_size] for i in range(0, len(c), batch_size)]
        for j in rng.permutation(len(batches)):
            idx = batches[j]
            T = int(self.len[idx].max())
            take = lambda a, idx=idx, T=T: None if a is None else torch.from_numpy(a[idx, :T])  # noqa: E731
            yield (
                take(self.inp),
                take(self.tgt),
                torch.from_numpy(self.len[idx]),
                take(self.ev),
                take(self.gap),
            )

    def n_batches(self, batch_size: int) -> int:
        chunk = batch_size * 50
        n = len(self.len)
        return sum(math.ceil(min(chunk, n - s) / batch_size) for s in range(0, n, chunk))


def ndcg_at(model: LSTMRecommender, valid: EvalSet, ks=(10,), batch_size: int = 1024) -> dict[str, float]:
    """NDCG@k and HR@k for each k in ``ks``, from one scoring pass over the validation users."""
    ranks = ranks_of_targets(model, valid.histories, valid.targets, batch_size=batch_size)  # (U,) 0-based
    out = {}
    for k in ks:
        hit = ranks < k
        ndcg = torch.where(hit, 1.0 / torch.log2(ranks.double() + 2.0), torch.zeros((), dtype=torch.float64))
        out.update({f"ndcg@{k}": float(ndcg.mean()), f"hr@{k}": float(hit.double().mean())})
    return out


def _log_q(train: _Batches, n_items: int) -> torch.Tensor:
    """Sampling distribution for sampled softmax: popularity^0.75 mixed with 10% uniform."""
    counts = np.bincount(train.tgt[train.tgt > 0], minlength=n_items + 1).astype(np.float64)
    p = counts**0.75
    p[0] = 0.0
    p = 0.9 * p / max(p.sum(), 1e-12) + 0.1 / n_items
    p[0] = 1e-30
    return torch.log(torch.as_tensor(p / p.sum(), dtype=torch.float32))


def _param_groups(model: LSTMRecommender, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.net.named_parameters():
        (no_decay if p.dim() < 2 or "norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _train(
    model: LSTMRecommender,
    train: SequenceData,
    valid: EvalSet | None,
    *,
    stage: str,
    lr: float,
    max_epochs: int,
    time_budget_s: float | None,
    progress: ProgressCallback | None,
    progress_every: int,
    warmup_frac: float,
) -> LSTMRecommender:
    c = model.config
    t0 = time.perf_counter()
    torch.manual_seed(c.seed)
    rng = np.random.default_rng(c.seed)
    batches = _Batches(train, c.max_len)
    if len(batches) == 0:
        raise ValueError("no training sequences with a target: every sequence needs at least 2 events")
    device = model.device
    log_q = _log_q(batches, c.n_items).to(device) if c.n_items > c.sampled_softmax_above else None
    opt = torch.optim.AdamW(
        _param_groups(model, c.weight_decay), lr=lr, betas=(0.9, 0.98), fused=device.type == "cuda" or None
    )
    steps_per_epoch = batches.n_batches(c.batch_size)
    planned_epochs = max_epochs
    best, best_state, bad, step = -1.0, None, 0, 0
    history = []

    def lr_at(step: int) -> float:
        total = max(1, planned_epochs * steps_per_epoch)
        warm = max(1, int(warmup_frac * total))
        if step < warm:
            return lr * (step + 1) / warm
        f = min(1.0, (step - warm) / max(1, total - warm))
        return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * f)))

    def report(epoch: int, s: int, loss: float | None, metrics: dict | None = None) -> None:
        if progress is not None:
            frac = min(1.0, (epoch * steps_per_epoch + s) / max(1, planned_epochs * steps_per_epoch))
            progress(
                Progress(
                    stage=stage,
                    epoch=epoch,
                    step=s,
                    steps_per_epoch=steps_per_epoch,
                    loss=loss,
                    metrics=metrics or {},
                    fraction=frac,
                )
            )

    epoch = 0
    while epoch < planned_epochs:
        te = time.perf_counter()
        model.net.train()
        tot, nb = 0.0, 0
        for s, (inp, tgt, lens, ev, gap) in enumerate(batches.epoch(c.batch_size, rng)):
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            inp, tgt = inp.to(device), tgt.to(device)
            ev = None if ev is None else ev.to(device)
            gap = None if gap is None else gap.to(device)
            loss = model.train_loss(inp, tgt, lens, ev, gap, log_q=log_q)  # (,)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.net.parameters(), c.grad_clip)
            opt.step()
            step += 1
            tot += float(loss.detach())
            nb += 1
            if progress_every and (s + 1) % progress_every == 0:
                report(epoch, s + 1, tot / nb)
            if time_budget_s and time.perf_counter() - t0 > time_budget_s:
                break  # the budget is a promise to the caller: stop mid-epoch, validate, keep the best
        metrics = {"loss": tot / max(nb, 1), "epoch_seconds": time.perf_counter() - te}
        if valid is not None and len(valid):
            model.net.eval()
            metrics.update(ndcg_at(model, valid))
            score = metrics["ndcg@10"]
            if score > best:
                best, bad = score, 0
                best_state = copy.deepcopy(model.net.state_dict())
            else:
                bad += 1
        history.append({"epoch": epoch + 1, **metrics})
        elapsed = time.perf_counter() - t0
        epoch += 1
        if time_budget_s:  # re-plan the LR schedule to what still fits the budget (only ever shorter)
            per_epoch = elapsed / epoch
            fits = epoch + int(max(0.0, time_budget_s - elapsed) / max(per_epoch, 1e-6))
            planned_epochs = max(epoch, min(planned_epochs, fits))
        report(epoch - 1, steps_per_epoch, metrics["loss"], metrics)
        if valid is not None and bad >= c.patience:
            break
        if time_budget_s and (elapsed >= time_budget_s or elapsed + (elapsed / epoch) > time_budget_s * 1.02):
            break
    if best_state is not None:
        model.net.load_state_dict(best_state)
    model.net.eval()
    model.history = history
    model.train_seconds = time.perf_counter() - t0
    return model


def fit(
    config: LSTMConfig,
    train: SequenceData,
    valid: EvalSet | None = None,
    side: ItemSide | None = None,
    *,
    time_budget_s: float | None = None,
    progress: ProgressCallback | None = None,
    progress_every: int = 50,
    device: str | torch.device | None = None,
) -> LSTMRecommender:
    """Pretrain a fresh model (see module docstring)."""
    if config.n_items <= 0:
        config.n_items = int(max((int(np.max(s)) for s in train.items if len(s)), default=0))
    torch.manual_seed(config.seed)
    model = LSTMRecommender(config, side).to(pick_device(device))
    return pretrain(
        model, train, valid, time_budget_s=time_budget_s, progress=progress, progress_every=progress_every
    )


def pretrain(
    model: LSTMRecommender,
    train: SequenceData,
    valid: EvalSet | None = None,
    *,
    time_budget_s: float | None = None,
    progress: ProgressCallback | None = None,
    progress_every: int = 50,
) -> LSTMRecommender:
    """Pretrain ``model`` in place on every next-item target, with its config's schedule."""
    c = model.config
    return _train(
        model,
        train,
        valid,
        stage="pretrain",
        lr=c.lr,
        max_epochs=c.max_epochs,
        time_budget_s=time_budget_s,
        progress=progress,
        progress_every=progress_every,
        warmup_frac=c.warmup_frac,
    )


def finetune(
    model: LSTMRecommender,
    train: SequenceData,
    valid: EvalSet | None = None,
    *,
    lr: float | None = None,
    max_epochs: int | None = None,
    time_budget_s: float | None = None,
    progress: ProgressCallback | None = None,
    progress_every: int = 50,
    device: str | torch.device | None = None,
) -> LSTMRecommender:
    """Fine-tune pretrained weights on the target slice ``train.target_mask`` (see module docstring)."""
    c = model.config
    model.to(pick_device(device))
    return _train(
        model,
        train,
        valid,
        stage="finetune",
        lr=lr if lr is not None else c.lr * c.finetune_lr_scale,
        max_epochs=max_epochs if max_epochs is not None else max(1, c.max_epochs // 3),
        time_budget_s=time_budget_s,
        progress=progress,
        progress_every=progress_every,
        warmup_frac=0.0,
    )


def save_run(model: LSTMRecommender, directory: str | os.PathLike, meta: dict | None = None) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
    tmp = d / "model.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, d / "model.pt")
    doc = {
        "model": "lstm",
        "config": model.config_dict(),
        "meta": meta or {},
        "history": model.training_curve(),
        "train_seconds": getattr(model, "train_seconds", None),
    }
    (d / "config.json.tmp").write_text(json.dumps(doc, indent=2))
    os.replace(d / "config.json.tmp", d / "config.json")
    return d


def load_run(directory: str | os.PathLike, device: str | torch.device | None = None) -> LSTMRecommender:
    d = Path(directory)
    doc = json.loads((d / "config.json").read_text())
    known = {f.name for f in fields(LSTMConfig)}
    config = LSTMConfig(**{k: v for k, v in doc["config"].items() if k in known})
    model = LSTMRecommender(config)
    state = torch.load(d / "model.pt", map_location="cpu", weights_only=True)
    model.net.load_state_dict(state)
    model.net.eval()
    model.history = doc.get("history", [])
    return model.to(pick_device(device))
