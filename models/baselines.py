"""Non-neural baselines behind the same ``Recommender`` interface (fit, score, top_k).

``MostPop().fit(train, n_items=None) -> self``
    Scores every item by log(1 + training count), the same for every user.
``ItemKNN(window=5, backward_weight=0.5, recency=0.8, neighbours=200, alpha=0.5).fit(train, n_items=None)``
    Sequential item-to-item co-occurrence: within each sequence, item b at distance d after item a adds
    1/d to C[a, b] (and ``backward_weight``/d to C[b, a]); similarities are
    C[a, b] / (n_a^alpha n_b^(1-alpha)),
    pruned to the ``neighbours`` strongest per item and kept as a sparse CSR matrix. A user's scores are the
    sum of their history items' rows, weighted ``recency``^(steps from the end); a tiny popularity term
    breaks ties and fills items without co-occurrence.

``train`` is a ``models.train.SequenceData`` or a plain list of id sequences (numpy arrays / lists).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from models.base import Histories, Recommender


def _sequences(train) -> list[np.ndarray]:
    seqs = train.items if hasattr(train, "items") else train
    return [np.asarray(s, dtype=np.int64) for s in seqs]


def _n_items(seqs: list[np.ndarray], n_items: int | None) -> int:
    if n_items:
        return int(n_items)
    return int(max((int(s.max()) for s in seqs if len(s)), default=0))


class MostPop(Recommender):
    name = "mostpop"

    def __init__(self) -> None:
        self.pop = torch.zeros(1)
        self.train_seconds = 0.0

    def fit(self, train, n_items: int | None = None, **_) -> MostPop:
        t0 = time.perf_counter()
        seqs = _sequences(train)
        self.n_items = _n_items(seqs, n_items)
        flat = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
        counts = np.bincount(flat[(flat > 0) & (flat <= self.n_items)], minlength=self.n_items + 1)
        self.pop = torch.log1p(torch.as_tensor(counts, dtype=torch.float32))  # (N+1,)
        self.train_seconds = time.perf_counter() - t0
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        s = self.pop.unsqueeze(0).expand(len(histories), -1).clone()  # (B, N+1)
        s[:, 0] = float("-inf")
        return s


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
        self.sim: torch.Tensor | None = None  # (N+1, N+1) sparse CSR, row = history item
        self.pop = torch.zeros(1)
        self.train_seconds = 0.0

    def fit(self, train, n_items: int | None = None, **_) -> ItemKNN:
        t0 = time.perf_counter()
        seqs = _sequences(train)
        n = self.n_items = _n_items(seqs, n_items)
        flat = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
        uid = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
        rows, cols, vals = [], [], []
        for d in range(1, self.window + 1):
            a, b = flat[:-d], flat[d:]
            ok = (uid[:-d] == uid[d:]) & (a > 0) & (b > 0) & (a != b)
            a, b = a[ok], b[ok]
            rows += [a, b]
            cols += [b, a]
            vals += [np.full(len(a), 1.0 / d), np.full(len(a), self.backward_weight / d)]
        counts = np.bincount(flat[flat > 0], minlength=n + 1).astype(np.float64)
        self.pop = torch.as_tensor(counts / max(counts.max(), 1.0), dtype=torch.float32)
        if rows:
            r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
            key = r * (n + 1) + c  # sum duplicates
            uniq, inv = np.unique(key, return_inverse=True)
            v = np.bincount(inv, weights=v)
            r, c = uniq // (n + 1), uniq % (n + 1)
            v = v / (np.power(counts[r], self.alpha) * np.power(counts[c], 1.0 - self.alpha) + 1e-12)
            # keep the strongest neighbours per source item
            order = np.lexsort((-v, r))
            r, c, v = r[order], c[order], v[order]
            starts = np.searchsorted(r, r, side="left")
            keep = (np.arange(len(r)) - starts) < self.neighbours
            r, c, v = r[keep], c[keep], v[keep]
        else:
            r = c = np.zeros(0, np.int64)
            v = np.zeros(0)
        idx = torch.as_tensor(np.stack([r, c]), dtype=torch.long)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore")
            self.sim = (
                torch.sparse_coo_tensor(
                    idx, torch.as_tensor(v, dtype=torch.float32), (n + 1, n + 1), check_invariants=False
                )
                .coalesce()
                .to_sparse_csr()
            )  # (N+1, N+1)
        self.train_seconds = time.perf_counter() - t0
        return self

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
            u = (
                torch.sparse_coo_tensor(
                    torch.stack([b_idx, items[keep]]), w[keep], (B, self.n_items + 1), check_invariants=False
                )
                .coalesce()
                .to_sparse_csr()
            )  # (B, N+1) sparse
            s = (
                u @ self.sim
            ).to_dense()  # (B, N+1): sparse x sparse, only the history items' rows are touched
        s = s + 1e-6 * self.pop  # tie-break by popularity
        s[:, 0] = float("-inf")
        return s.contiguous()
