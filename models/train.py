"""The training loop for any neural sequence recommender (``models.neural.NeuralRecommender``).

The loop sees a model only through what it declares: ``net`` (an ``nn.Module``), ``config`` (batch size,
learning rate, schedule, patience, seed, ...), ``device`` and ``train_loss(...)``. It imports no model.

``pretrain(model, train, valid=None, *, time_budget_s=None, progress=None) -> model``
    Predict the next item at every real position. AdamW, linear warm-up then cosine decay (``lr_at``),
    gradient clipping, bf16 autocast on CUDA, early stopping on validation NDCG@10 (full ranking, history
    excluded) keeping the best weights. The schedule is re-planned after each epoch to fit ``time_budget_s``,
    and an epoch stops mid-way when the budget runs out.
``finetune(model, train, valid=None, *, lr=None, max_epochs=None, time_budget_s=None, progress=None)``
    Continue from the current weights at ``lr`` (default ``config.lr * config.finetune_lr_scale``) on the
    positions ``train.target_mask`` selects. Progress reports carry stage ``"finetune"``.

Both set ``model.history`` (one dict per epoch) and ``model.train_seconds``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from models.base import EvalSet, Progress, ProgressCallback, SequenceData
from models.data import TrainBatches
from models.metrics import validation_metrics


def lr_at(step: int, lr: float, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to lr * 0.01 at ``total`` (nanoGPT's get_lr)."""
    if step < warmup:  # 1) linear warm-up
        return lr * (step + 1) / warmup
    f = min(1.0, (step - warmup) / max(1, total - warmup))  # 2) cosine decay, flat after total
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * f)))


def log_q(batches: TrainBatches, n_items: int) -> torch.Tensor:
    """Sampling distribution for sampled softmax: popularity^0.75 mixed with 10% uniform, as logs (N+1,)."""
    p = batches.target_counts(n_items).astype(np.float64) ** 0.75
    p[0] = 0.0
    p = 0.9 * p / max(p.sum(), 1e-12) + 0.1 / n_items
    p[0] = 1e-30
    return torch.log(torch.as_tensor(p / p.sum(), dtype=torch.float32))


def param_groups(net: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and embeddings; none on biases and norms."""
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.dim() < 2 or "norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def autocast(device: torch.device):
    """bf16 autocast on CUDA; full precision elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def clock(kind: str):
    """The clock a time budget is counted on: ``wall`` (the default), or ``cpu``: this process's CPU seconds per
    torch thread, which on a machine shared with other jobs counts what the training itself got (a benchmark
    taken there then stands for a quiet machine; with one thread it is a conservative stand-in)."""
    if kind == "cpu":
        return lambda: time.process_time() / torch.get_num_threads()
    return time.perf_counter


@dataclass
class Plan:
    """How many epochs fit: the configured maximum, or what the time budget allows at the pace so far (re-planned
    as the pace changes, e.g. on a machine shared with other jobs; the LR schedule follows the plan)."""

    max_epochs: int
    steps_per_epoch: int
    budget_s: float | None
    now: object  # the budget's clock (``clock``)
    started: float = 0.0
    epochs: int = 0  # the current plan

    def __post_init__(self) -> None:
        self.started, self.epochs = self.now(), self.max_epochs

    def elapsed(self) -> float:
        return self.now() - self.started

    def out_of_time(self) -> bool:
        return bool(self.budget_s) and self.elapsed() > self.budget_s

    def early_estimate(self, steps: int) -> None:
        """Re-plan from the first ``steps`` steps' pace (+10 % for validation), so that the warm-up and the
        decay fit the budget from the start rather than from the end of the first epoch."""
        if self.budget_s:
            per_epoch = 1.1 * self.elapsed() / steps * self.steps_per_epoch
            self.epochs = max(1, min(self.max_epochs, int(self.budget_s / max(per_epoch, 1e-6))))

    def after_epoch(self, done: int) -> bool:
        """Re-plan after ``done`` epochs; True when another epoch still fits."""
        if not self.budget_s:
            return done < self.epochs
        per_epoch = self.elapsed() / done
        fits = done + int(max(0.0, self.budget_s - self.elapsed()) / max(per_epoch, 1e-6))
        self.epochs = max(done, min(self.max_epochs, fits))
        return done < self.epochs and self.elapsed() + per_epoch <= self.budget_s * 1.02

    def fraction(self, epoch: int, step: int) -> float:
        return min(1.0, (epoch * self.steps_per_epoch + step) / max(1, self.epochs * self.steps_per_epoch))


class BestWeights:
    """Early stopping: keeps the weights of the best validation NDCG@10 and counts epochs without a gain."""

    def __init__(self, patience: int):
        self.patience, self.best, self.state, self.bad = patience, -1.0, None, 0

    def update(self, score: float, net: torch.nn.Module) -> None:
        if score > self.best:
            self.best, self.bad, self.state = score, 0, copy.deepcopy(net.state_dict())
        else:
            self.bad += 1

    @property
    def exhausted(self) -> bool:
        return self.bad >= self.patience

    def restore(self, net: torch.nn.Module) -> None:
        if self.state is not None:
            net.load_state_dict(self.state)


class Loop:
    """One training run of ``model`` on ``data``: the optimizer, the plan, the best weights, the curve."""

    def __init__(
        self,
        model,
        data: SequenceData,
        *,
        stage: str,
        lr: float,
        max_epochs: int,
        warmup_frac: float,
        time_budget_s: float | None,
        progress: ProgressCallback | None,
    ):
        c = self.c = model.config
        self.model, self.stage, self.lr, self.progress = model, stage, lr, progress
        torch.manual_seed(c.seed)
        self.rng = np.random.default_rng(c.seed)
        self.batches = TrainBatches(data, c.max_len)
        if len(self.batches) == 0:
            raise ValueError("no training sequence has a target: every sequence needs at least 2 steps")
        dev = model.device
        self.log_q = log_q(self.batches, c.n_items).to(dev) if c.n_items > c.sampled_softmax_above else None
        groups = param_groups(model.net, c.weight_decay)
        self.opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), fused=dev.type == "cuda" or None)
        self.plan = Plan(
            max_epochs, self.batches.n_batches(c.batch_size), time_budget_s, clock(c.budget_clock)
        )
        self.warmup_frac = warmup_frac
        self.best, self.history, self.step = BestWeights(c.patience), [], 0

    def report(self, epoch: int, s: int, loss: float | None, metrics: dict | None = None) -> None:
        if self.progress is not None:
            frac = self.plan.fraction(epoch, s)
            self.progress(
                Progress(self.stage, epoch, s, self.plan.steps_per_epoch, loss, metrics or {}, frac)
            )

    def epoch(self, epoch: int) -> float:
        """One pass over the batches (or until the budget runs out); returns the mean loss."""
        model, c, dev = self.model, self.c, self.model.device
        model.net.train()
        total, n = 0.0, 0
        for s, (inp, tgt, lens, ev, gap) in enumerate(self.batches.epoch(c.batch_size, self.rng)):
            planned = self.plan.epochs * self.plan.steps_per_epoch  # re-planned to the budget as it goes
            for g in self.opt.param_groups:
                g["lr"] = lr_at(self.step, self.lr, max(1, int(self.warmup_frac * planned)), planned)
            move = lambda t: None if t is None else t.to(dev, non_blocking=True)  # noqa: E731
            with autocast(dev):
                loss = model.train_loss(move(inp), move(tgt), lens, move(ev), move(gap), log_q=self.log_q)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.net.parameters(), c.grad_clip)
            self.opt.step()
            self.step, total, n = self.step + 1, total + float(loss.detach()), n + 1
            if self.step == min(20, self.plan.steps_per_epoch // 2 or 1):
                self.plan.early_estimate(self.step)
            if c.progress_every and (s + 1) % c.progress_every == 0:
                self.report(epoch, s + 1, total / n)
            if self.plan.out_of_time():
                break  # the budget is a promise to the caller: stop mid-epoch, validate, keep the best
        return total / max(n, 1)

    def run(self, valid: EvalSet | None):
        """Epochs until the plan, the budget or the patience ends; the best weights restored."""
        model, epoch = self.model, 0
        while True:
            t_epoch = time.perf_counter()
            loss = self.epoch(epoch)
            metrics = {"loss": loss, "epoch_seconds": time.perf_counter() - t_epoch}
            if valid is not None and len(valid):
                metrics.update(validation_metrics(model, valid))
                self.best.update(metrics["ndcg@10"], model.net)
            self.history.append({"epoch": epoch + 1, **metrics})
            epoch += 1
            more = self.plan.after_epoch(epoch)
            self.report(epoch - 1, self.plan.steps_per_epoch, loss, metrics)
            if not more or (valid is not None and self.best.exhausted):
                break
        self.best.restore(model.net)
        model.net.eval()
        model.history, model.train_seconds = self.history, self.plan.elapsed()
        return model


def pretrain(model, data: SequenceData, valid: EvalSet | None = None, *, time_budget_s=None, progress=None):
    """Pretrain ``model`` in place on every next-item target, with its config's schedule."""
    c = model.config
    loop = Loop(
        model,
        data,
        stage="pretrain",
        lr=c.lr,
        max_epochs=c.max_epochs,
        warmup_frac=c.warmup_frac,
        time_budget_s=time_budget_s,
        progress=progress,
    )
    return loop.run(valid)


def finetune(
    model,
    data: SequenceData,
    valid: EvalSet | None = None,
    *,
    lr: float | None = None,
    max_epochs: int | None = None,
    time_budget_s=None,
    progress=None,
):
    """Fine-tune the current weights on the target slice ``data.target_mask`` (see the module docstring)."""
    c = model.config
    loop = Loop(
        model,
        data,
        stage="finetune",
        lr=lr if lr is not None else c.lr * c.finetune_lr_scale,
        max_epochs=max_epochs if max_epochs is not None else max(1, c.max_epochs // 3),
        warmup_frac=0.0,
        time_budget_s=time_budget_s,
        progress=progress,
    )
    return loop.run(valid)
