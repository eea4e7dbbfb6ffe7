"""Batched scoring for many users, for any ``Recommender``.

Public API
----------
``pick_device(name=None) -> torch.device``
    ``name`` (``auto`` | ``cpu`` | ``cuda`` | ``cuda:1`` | ``mps``; the app passes its Settings' device), else
    cuda → mps → cpu. Models read no environment: the caller decides.
``score_users(model, histories, batch_size=1024, exclude=None, k=100, exclude_history=True, device=None)
    -> (scores (U, k) float32, indices (U, k) long)``, on the CPU.
    ``exclude`` is a (U, N+1) or (N+1,) bool mask applied before top-k, as is each user's own history.
    Runs under ``torch.inference_mode()``; bf16 autocast on CUDA only.
``timed_score(model, histories, device=None) -> (device_name, elapsed_ms)``
    One scoring call, timed, for the UI line "5,000 items scored on cpu in 3.1 ms".
"""

from __future__ import annotations

import contextlib
import time

import torch

from models.base import Histories, Recommender, mask_scores


def pick_device(name: str | torch.device | None = None) -> torch.device:
    if isinstance(name, torch.device):
        return name
    if name and name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _move(model: Recommender, device: torch.device) -> None:
    if model.device != device:  # walking every module costs ~0.7 ms a call
        model.to(device)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _masked_scores(
    model: Recommender,
    h: Histories,
    exclude: torch.Tensor | None,
    rows: slice,
    exclude_history: bool,
    device: torch.device,
) -> torch.Tensor:
    with _autocast(device):
        s = model.score(h.to(device))
    rows_excluded = None if exclude is None else (exclude[rows] if exclude.dim() == 2 else exclude)
    s = mask_scores(s.float(), h.items, rows_excluded, exclude_history)  # (b, N+1)
    return s


def score_users(
    model: Recommender,
    histories: Histories,
    batch_size: int = 1024,
    exclude: torch.Tensor | None = None,
    k: int = 100,
    exclude_history: bool = True,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    dev = pick_device(device)
    _move(model, dev)
    n = len(histories)
    k = max(1, min(k, model.n_items))
    out_s, out_i = [], []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            rows = slice(start, min(n, start + batch_size))
            s = _masked_scores(model, histories.rows(rows), exclude, rows, exclude_history, dev)
            v, i = torch.topk(s, k, dim=1)
            out_s.append(v.cpu())
            out_i.append(i.cpu())
    if not out_s:
        return torch.empty(0, k), torch.empty(0, k, dtype=torch.long)
    return torch.cat(out_s), torch.cat(out_i)


def timed_score(
    model: Recommender, histories: Histories, device: str | torch.device | None = None
) -> tuple[str, float]:
    dev = pick_device(device)
    _move(model, dev)
    h = histories.to(dev)
    with torch.inference_mode(), _autocast(dev):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.score(h)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1000.0
    return str(dev.type), ms
