"""Non-neural baselines behind the same ``Recommender`` interface (fit, score, top_k).

``MostPop().fit(train) -> self``
    Scores every item by log(1 + training count), the same for every user.
``ItemKNN(window=5, backward_weight=0.5, recency=0.8, neighbours=200, alpha=0.5).fit(train)``
    Sequential item-to-item co-occurrence: within each sequence, item b at distance d after item a adds
    1/d to C[a, b] (and ``backward_weight``/d to C[b, a]); similarities are
    C[a, b] / (n_a^alpha n_b^(1-alpha)),
    pruned to the ``neighbours`` strongest per item and kept as a sparse CSR matrix. A user's scores are the
    sum of their history items' rows, weighted ``recency``^(steps from the end); a tiny popularity term
    breaks ties and fills items without co-occurrence.

``train`` is a ``models.base.SequenceData``; its ``n_items`` is the catalog size, so an item that is never a
training step (a new item, one seen only as a held-out step) still has a score.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from models.base import EvalSet, Histories, ItemSide, Progress, ProgressCallback, Recommender, SequenceData


def _done(progress: ProgressCallback | None) -> None:
    """A fit without epochs reports once, when it is done."""
    if progress is not None:
        progress(Progress(stage="fit", epoch=0, step=1, steps_per_epoch=1, fraction=1.0))


class MostPop(Recommender):
    name = "mostpop"

    def __init__(self) -> None:
        self.pop = torch.zeros(1)
        self.train_seconds = 0.0

    def fit(
        self, train: SequenceData, valid: EvalSet | None = None, *, time_budget_s=None, progress=None
    ) -> MostPop:
        """Count the training steps per item (``valid``, the budget and progress have nothing to steer)."""
        t0 = time.perf_counter()
        self.n_items = int(train.n_items)
        seqs = train.items
        flat = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
        counts = np.bincount(flat[(flat > 0) & (flat <= self.n_items)], minlength=self.n_items + 1)
        self.pop = torch.log1p(torch.as_tensor(counts, dtype=torch.float32))  # (N+1,)
        self.train_seconds = time.perf_counter() - t0
        _done(progress)
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        s = self.pop.unsqueeze(0).expand(len(histories), -1).clone()  # (B, N+1)
        s[:, 0] = float("-inf")
        return s

    def add_items(self, n_new: int, side: ItemSide | None = None) -> None:
        """New items have no count: log(1 + 0) = 0."""
        self.pop = torch.cat([self.pop, torch.zeros(n_new)])
        self.n_items += n_new

    def save_state(self, directory: Path) -> None:
        torch.save({"pop": self.pop}, Path(directory) / "mostpop.pt")

    @classmethod
    def load_state(cls, config: dict, directory: Path) -> MostPop:
        model = cls()
        model.pop = torch.load(Path(directory) / "mostpop.pt", weights_only=True)["pop"]
        model.n_items = len(model.pop) - 1
        return model


class ItemKNN(Recommender):
    name = "itemknn"

    def __init__(
        self,
        window: int = 5,
        backward_weight: float = 0.5,
        recency: float = 0.8,
        neighbours: int = 200,
        alpha: float = 0.5,
    ) -> None:
        self.window, self.backward_weight, self.recency = window, backward_weight, recency
        self.neighbours, self.alpha = neighbours, alpha
        self.pairs = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))  # (rows, cols, similarity)
        self.sim: torch.Tensor | None = None  # (N+1, N+1) sparse CSR, row = history item
        self.pop = torch.zeros(1)
        self.train_seconds = 0.0

    def config_dict(self) -> dict:
        keys = ("window", "backward_weight", "recency", "neighbours", "alpha")
        return {k: getattr(self, k) for k in keys}

    def fit(
        self, train: SequenceData, valid: EvalSet | None = None, *, time_budget_s=None, progress=None
    ) -> ItemKNN:
        """Count co-occurrences in ``train`` (see the module docstring)."""
        t0 = time.perf_counter()
        n = self.n_items = int(train.n_items)
        flat = np.concatenate(train.items) if len(train.items) else np.zeros(0, np.int64)
        counts = np.bincount(flat[flat > 0], minlength=n + 1).astype(np.float64)
        self.pop = torch.as_tensor(counts / max(counts.max(), 1.0), dtype=torch.float32)
        r, c, v = self._cooccurrence(
            flat, np.repeat(np.arange(len(train.items)), [len(s) for s in train.items])
        )
        v = v / (np.power(counts[r], self.alpha) * np.power(counts[c], 1.0 - self.alpha) + 1e-12)
        self.pairs = self._strongest(r, c, v)
        self._build()
        self.train_seconds = time.perf_counter() - t0
        _done(progress)
        return self

    def _cooccurrence(self, flat: np.ndarray, uid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct (a, b) pairs within ``window`` steps of one user, with their summed 1/d weights."""
        rows, cols, vals = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
        for d in range(1, self.window + 1):
            a, b = flat[:-d], flat[d:]
            ok = (uid[:-d] == uid[d:]) & (a > 0) & (b > 0) & (a != b)
            a, b = a[ok], b[ok]
            rows += [a, b]
            cols += [b, a]
            vals += [np.full(len(a), 1.0 / d), np.full(len(a), self.backward_weight / d)]
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        key = r * (self.n_items + 1) + c  # sum duplicates
        uniq, inv = np.unique(key, return_inverse=True)
        return uniq // (self.n_items + 1), uniq % (self.n_items + 1), np.bincount(inv, weights=v)

    def _strongest(self, r: np.ndarray, c: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
        """The ``neighbours`` strongest pairs per source item."""
        order = np.lexsort((-v, r))
        r, c, v = r[order], c[order], v[order]
        keep = (np.arange(len(r)) - np.searchsorted(r, r, side="left")) < self.neighbours
        return r[keep], c[keep], v[keep]

    def _build(self) -> None:
        r, c, v = self.pairs
        n = self.n_items + 1
        idx = torch.as_tensor(np.stack([r, c]), dtype=torch.long)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore")
            coo = torch.sparse_coo_tensor(
                idx, torch.as_tensor(v, dtype=torch.float32), (n, n), check_invariants=False
            )
            self.sim = coo.coalesce().to_sparse_csr()  # (N+1, N+1)

    def score(self, histories: Histories) -> torch.Tensor:
        items = histories.items.long().cpu()  # (B, T)
        B, T = items.shape
        nz = (items > 0).to(torch.float32)
        # steps from the end among real items: the latest real item gets weight 1
        after = nz.flip(1).cumsum(1).flip(1) - nz  # real items after each position
        w = torch.pow(torch.tensor(self.recency), after) * nz  # (B, T)
        keep = (items > 0) & (items <= self.n_items)
        b_idx = torch.arange(B).unsqueeze(1).expand(B, T)[keep]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u = torch.sparse_coo_tensor(
                torch.stack([b_idx, items[keep]]), w[keep], (B, self.n_items + 1), check_invariants=False
            )
            s = (u.coalesce().to_sparse_csr() @ self.sim).to_dense()  # (B, N+1): only history rows touched
        s = s + 1e-6 * self.pop  # tie-break by popularity
        s[:, 0] = float("-inf")
        return s.contiguous()

    def add_items(self, n_new: int, side: ItemSide | None = None) -> None:
        """New items have no co-occurrence and no count: they score 0 until the next fit."""
        self.n_items += n_new
        self.pop = torch.cat([self.pop, torch.zeros(n_new)])
        self._build()

    def save_state(self, directory: Path) -> None:
        r, c, v = self.pairs
        state = {
            "rows": torch.from_numpy(r),
            "cols": torch.from_numpy(c),
            "sim": torch.from_numpy(v),
            "pop": self.pop,
        }
        torch.save(state, Path(directory) / "itemknn.pt")

    @classmethod
    def load_state(cls, config: dict, directory: Path) -> ItemKNN:
        state = torch.load(Path(directory) / "itemknn.pt", weights_only=True)
        model = cls(**config)
        model.pairs = (state["rows"].numpy(), state["cols"].numpy(), state["sim"].numpy())
        model.pop, model.n_items = state["pop"], len(state["pop"]) - 1
        model._build()
        return model
