"""Sequences in, tensors out: left padding, the leave-one-out split, and training batches.

``left_pad(seqs, max_len, event_types=None, gaps=None) -> Histories``
    Lists of id sequences → left-padded histories keeping the ``max_len`` most recent.
``leave_one_out(data, max_len=50, *, test=True, rows=None) -> Split``
    The one split every model and every protocol uses. Per user with at least ``MIN_STEPS`` steps: with
    ``test`` the last step is the test target and the one before it the validation target; without, the last
    step is the validation target. Training keeps every step before the held-out ones (users with fewer
    steps train on all of theirs). ``rows`` limits which of those users are evaluated (a validation sample,
    the users whose last step is in a slice); the others are held out all the same.
``TrainBatches(data, max_len)``
    Next-item pairs per sequence, left-aligned in fixed arrays; ``epoch(batch_size, rng)`` yields batches of
    similar length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from models.base import EvalSet, Histories, SequenceData

MIN_STEPS = 3  # a held-out user needs a history, a validation step and (for a test) a test step


def left_pad(
    seqs: list, max_len: int, event_types: list | None = None, gaps: list | None = None
) -> Histories:
    """Lists of id sequences -> left-padded ``Histories`` keeping the ``max_len`` most recent."""

    def pad(rows):
        out = np.zeros((len(rows), max_len), dtype=np.int64)
        for i, r in enumerate(rows):
            r = np.asarray(r, dtype=np.int64)[-max_len:] if max_len else np.zeros(0, np.int64)
            if len(r):
                out[i, max_len - len(r) :] = r
        return torch.from_numpy(out)

    return Histories(
        pad(seqs), None if event_types is None else pad(event_types), None if gaps is None else pad(gaps)
    )


@dataclass
class Split:
    train: SequenceData
    valid: EvalSet | None  # None when no user has enough steps
    test: EvalSet | None  # None without ``test`` or enough steps


def _held_out(data: SequenceData, rows: list[int], drop: int, max_len: int) -> EvalSet:
    """History = each row's steps before its last ``drop``; target = the step right after that history."""
    cut = lambda seqs: None if seqs is None else [seqs[u][:-drop] for u in rows]  # noqa: E731
    h = left_pad(cut(data.items), max_len, cut(data.event_types), cut(data.gaps))
    targets = torch.as_tensor([int(data.items[u][-drop]) for u in rows], dtype=torch.long)
    return EvalSet(h, targets)


def leave_one_out(
    data: SequenceData, max_len: int = 50, *, test: bool = True, rows: list[int] | None = None
) -> Split:
    """See the module docstring."""
    held = 2 if test else 1
    eligible = [u for u, s in enumerate(data.items) if len(s) >= MIN_STEPS]
    rows = eligible if rows is None else sorted(set(rows) & set(eligible))
    drop = np.zeros(len(data.items), np.int64)
    drop[eligible] = held

    def keep(seqs: list | None) -> list | None:
        return None if seqs is None else [s[: len(s) - d] for s, d in zip(seqs, drop)]

    train = SequenceData(
        keep(data.items), keep(data.event_types), keep(data.gaps), keep(data.target_mask), data.n_items
    )
    if not rows:
        return Split(train, None, None)
    valid = _held_out(data, rows, held, max_len)
    return Split(train, valid, _held_out(data, rows, 1, max_len) if test else None)


class TrainBatches:
    """Next-item pairs per sequence, left-aligned in fixed arrays; batches of similar length."""

    def __init__(self, data: SequenceData, max_len: int):
        keep = [u for u, s in enumerate(data.items) if len(s) >= 2]
        n, T = len(keep), max_len
        self.inp = np.zeros((n, T), np.int64)  # (U, T) input items, left-aligned
        self.tgt = np.zeros((n, T), np.int64)  # (U, T) next item at each position, 0 = no target
        self.ev = np.zeros((n, T), np.int64) if data.event_types is not None else None
        self.gap = np.zeros((n, T), np.int64) if data.gaps is not None else None
        self.len = np.zeros(n, np.int64)
        for i, u in enumerate(keep):
            s = data.items[u][-(T + 1) :]
            L = len(s) - 1
            self.inp[i, :L] = s[:-1]
            t = s[1:].copy()
            if data.target_mask is not None:
                t = t * np.asarray(data.target_mask[u], bool)[-(T + 1) :][1:]
            self.tgt[i, :L] = t
            if self.ev is not None:
                self.ev[i, :L] = np.asarray(data.event_types[u], np.int64)[-(T + 1) :][:-1]
            if self.gap is not None:
                self.gap[i, :L] = np.asarray(data.gaps[u], np.int64)[-(T + 1) :][:-1]
            self.len[i] = L
        sel = np.nonzero((self.tgt > 0).any(1))[0]  # rows with at least one target
        for name in ("inp", "tgt", "ev", "gap", "len"):
            a = getattr(self, name)
            if a is not None:
                setattr(self, name, a[sel])

    def __len__(self) -> int:
        return len(self.len)

    def target_counts(self, n_items: int) -> np.ndarray:
        """(N+1,) how often each item is a training target."""
        return np.bincount(self.tgt[self.tgt > 0], minlength=n_items + 1)

    def epoch(self, batch_size: int, rng: np.random.Generator):
        """Shuffle, sort chunks of 50 batches by length (little padding), shuffle the batch order. Yields
        (inputs, targets, lengths, event_types, gaps), each (B, T_batch) or (B,), event_types/gaps maybe None."""
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
