"""EASE: a linear item-to-item model with a closed-form fit (Steck, "Embarrassingly Shallow Autoencoders for
Sparse Data", WWW 2019).

It learns the weights B that best rebuild each shopper's set of items from the shopper's other items:
min ||X - XB||² + λ||B||² with diag(B) = 0, whose solution is P = (XᵀX + λI)⁻¹, B_ij = -P_ij / P_jj. X holds
one row per training sequence with a 1 for each distinct item in it, so EASE sees what the same shoppers
bought or viewed, in any order and at any distance, and it reads a shopper's history as a set, as the paper
does: every history item counts the same, however long ago. So its errors differ from item-kNN's (neighbours
within a few steps, recent items first) and from the sequence models', which is why a blend gains from it.
(On Beauty's validation users held out from the blend's weights, EASE that weights recent items as item-kNN
does is the better model alone, NDCG@10 0.060 against 0.052, and the worse part of the blend, 0.0753 against
0.0764: docs/BENCHMARKS.md.)

``EASE(lam=50, neighbours=200, tune=True).fit(train, valid)``
    B is kept to its ``neighbours`` largest positive weights per history item, a sparse matrix read like
    item-kNN's (``models.baselines.ItemToItem``: the sum of the history items' rows). Given a validation
    split, λ is chosen on it (``LAMBDAS``) instead of the default.

The fit inverts an (N+1) × (N+1) matrix per λ tried: 92 s for Beauty's 12,101 items and 7 values of λ on 2
cores (docs/BENCHMARKS.md), with 3 such matrices in memory (1.6 GB each at ``max_items``). A larger catalog
is refused with a clear error, and the blend leaves EASE out (``models.registry.build``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from models.base import EvalSet, SequenceData
from models.baselines import ItemToItem, report_fitted


class EASE(ItemToItem):
    name = "ease"
    state_file = "ease.pt"
    max_items = 20_000  # (N+1)² float32 matrices: 1.6 GB each at 20,000 items
    recency = 1.0  # the history as a set (see the module docstring)
    # λ tried on validation, from the default outwards (one inversion each), so a budget that runs out keeps
    # the likeliest values
    LAMBDAS = (50.0, 25.0, 100.0, 10.0, 250.0, 500.0, 1000.0)

    def __init__(self, lam: float = 50.0, neighbours: int = 200, tune: bool = True) -> None:
        super().__init__()
        self.lam, self.neighbours, self.tune = lam, neighbours, tune

    def config_dict(self) -> dict:
        return {"lam": self.lam, "neighbours": self.neighbours}

    def fit(
        self, train: SequenceData, valid: EvalSet | None = None, *, time_budget_s=None, progress=None
    ) -> EASE:
        """B from the training sequences (see the module docstring); with ``valid`` (and ``tune``), the λ of
        ``LAMBDAS`` with the best validation NDCG@10."""
        t0 = time.perf_counter()
        flat, uid, _ = self._count_items(train)
        if self.n_items > self.max_items:
            raise ValueError(
                f"EASE inverts an item × item matrix and takes catalogs of up to {self.max_items:,} items; this "
                f"one has {self.n_items:,}. Use item-kNN or a neural model for it."
            )
        gram = self._gram(flat, uid)
        if valid is not None and len(valid) and self.tune:
            self._tune(gram, valid, time_budget_s)
        else:
            self.pairs = self._weights(gram, self.lam)
            self._build()
        self.train_seconds = time.perf_counter() - t0
        report_fitted(progress)
        return self

    def _gram(self, flat: np.ndarray, uid: np.ndarray) -> torch.Tensor:
        """XᵀX: how many training sequences hold both items, (N+1, N+1) float32 (row and column 0 unused)."""
        n = self.n_items + 1
        real = flat > 0
        cells = np.unique(uid[real] * n + flat[real])  # each (sequence, item) once
        idx = torch.as_tensor(
            np.stack([cells // n, cells % n]), dtype=torch.long
        )  # (2, cells): sequence, item
        users = int(uid.max(initial=0)) + 1
        x = torch.sparse_coo_tensor(idx, torch.ones(len(cells)), (users, n), check_invariants=False)
        xt = torch.sparse_coo_tensor(idx.flip(0), torch.ones(len(cells)), (n, users), check_invariants=False)
        return torch.sparse.mm(xt.coalesce(), x.coalesce()).to_dense()  # (N+1, N+1)

    def _weights(self, gram: torch.Tensor, lam: float) -> tuple[np.ndarray, ...]:
        """B for ``lam``, pruned to the ``neighbours`` largest positive weights per history item."""
        gram.diagonal().add_(lam)
        try:
            p = torch.cholesky_inverse(torch.linalg.cholesky(gram))  # (N+1, N+1), symmetric positive definite
        finally:
            gram.diagonal().sub_(lam)
        p.div_(-p.diagonal().unsqueeze(0))  # B_ij = -P_ij / P_jj
        p.diagonal().zero_()
        p[0], p[:, 0] = 0.0, 0.0
        v, c = p.topk(min(self.neighbours, p.shape[1]), dim=1)  # (N+1, k), row = history item
        r = torch.arange(p.shape[0]).unsqueeze(1).expand_as(c)
        keep = v > 0
        return r[keep].numpy(), c[keep].numpy(), v[keep].double().numpy()

    def _tune(self, gram: torch.Tensor, valid: EvalSet, budget_s: float | None) -> None:
        """Each λ of ``LAMBDAS`` on a sample of validation users, within ``budget_s``; keeps the best NDCG@10
        (the default first, so a budget that runs out keeps it unless something better was found)."""
        started, sample = time.perf_counter(), self._tuning_sample(valid)
        best, chosen = -1.0, None
        for lam in self.LAMBDAS:
            if chosen is not None and budget_s and time.perf_counter() - started > budget_s:
                break
            self.pairs = self._weights(gram, lam)
            self._build()
            score = self._validation_ndcg(sample)
            if score > best:
                best, chosen = score, (lam, self.pairs)
        self.lam, self.pairs = chosen
        self._build()
