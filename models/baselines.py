"""Non-neural baselines behind the same ``Recommender`` interface (fit, score, top_k).

``MostPop().fit(train) -> self``
    Scores every item by log(1 + training count), the same for every user.
``ItemKNN(window=5, backward_weight=0.5, recency=0.8, neighbours=200, alpha=0.5, tune=True).fit(train, valid)``
    Sequential item-to-item co-occurrence: within each sequence, item b at distance d after item a adds
    1/d to C[a, b] (and ``backward_weight``/d to C[b, a]); similarities are
    C[a, b] / (n_a^alpha n_b^(1-alpha)),
    pruned to the ``neighbours`` strongest per item and kept as a sparse CSR matrix. A user's scores are the
    sum of their history items' rows, weighted ``recency``^(steps from the end); a tiny popularity term
    breaks ties and fills items without co-occurrence. Given a validation split, window, backward weight, alpha
    and recency are chosen on it (``TUNING``) instead of the defaults.

``ItemToItem``: what item-kNN and EASE (``models.ease``) share, a sparse item-to-item matrix read through a
shopper's recency-weighted history, with its pruning, tie-break, new items and checkpoint.

``train`` is a ``models.base.SequenceData``; its ``n_items`` is the catalog size, so an item that is never a
training step (a new item, one seen only as a held-out step) still has a score.
"""

from __future__ import annotations

import itertools
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from models.base import EvalSet, Histories, ItemSide, Progress, ProgressCallback, Recommender, SequenceData
from models.metrics import metrics_from_ranks, rank_targets

# torch says once per process that CSR tensors are "in beta"; item-kNN relies on them on purpose. A filter set
# once here, not a catch_warnings() per call: that resets Python's warning registry, and every later warning
# check in the process (torch's included) then takes the slow path, ~20 ms a homepage.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)


def report_fitted(progress: ProgressCallback | None) -> None:
    """A fit without epochs reports once, when it is done."""
    if progress is not None:
        progress(Progress(stage="fit", epoch=0, step=1, steps_per_epoch=1, fraction=1.0))


class MostPop(Recommender):
    name = "mostpop"
    recounts = True

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
        report_fitted(progress)
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


class ItemToItem(Recommender):
    """A sparse item-to-item weight matrix read through a shopper's history: a user's scores are the sum of
    their history items' rows, weighted ``recency``^(steps from the end), plus a tiny popularity term that breaks
    ties. Subclasses fill ``pairs`` (rows, cols, weights) in ``fit`` and name their ``state_file``."""

    state_file = ""
    recounts = True
    recency = 0.8
    neighbours = 200
    TUNING_USERS = 3000  # validation users a subclass's settings are chosen on

    def __init__(self) -> None:
        self.pairs = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))  # (rows, cols, weight)
        self.sim: torch.Tensor | None = None  # (N+1, N+1) sparse CSR, row = history item
        self.pop = torch.zeros(1)
        self.train_seconds = 0.0

    def _count_items(self, train: SequenceData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every training step flattened, its user's row, and the steps per item (which also set ``pop``)."""
        n = self.n_items = int(train.n_items)
        flat = np.concatenate(train.items) if len(train.items) else np.zeros(0, np.int64)
        uid = np.repeat(np.arange(len(train.items)), [len(s) for s in train.items])
        counts = np.bincount(flat[flat > 0], minlength=n + 1).astype(np.float64)
        self.pop = torch.as_tensor(counts / max(counts.max(), 1.0), dtype=torch.float32)
        return flat, uid, counts

    def _tuning_sample(self, valid: EvalSet) -> EvalSet:
        """Up to ``TUNING_USERS`` validation users, spread evenly over the split."""
        rows = torch.linspace(0, len(valid) - 1, min(len(valid), self.TUNING_USERS)).long()
        return EvalSet(Histories(valid.histories.items[rows]), valid.targets[rows])

    def _validation_ndcg(self, sample: EvalSet) -> float:
        return metrics_from_ranks(rank_targets(self, sample)[0], ks=(10,))["ndcg@10"]

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
        u = torch.sparse_coo_tensor(
            torch.stack([b_idx, items[keep]]), w[keep], (B, self.n_items + 1), check_invariants=False
        )
        s = (u.coalesce().to_sparse_csr() @ self.sim).to_dense()  # (B, N+1): only history rows touched
        s = s + 1e-6 * self.pop  # tie-break by popularity
        s[:, 0] = float("-inf")
        return s.contiguous()

    def add_items(self, n_new: int, side: ItemSide | None = None) -> None:
        """New items have no pairs and no count: they score 0 until the next fit."""
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
        torch.save(state, Path(directory) / self.state_file)

    @classmethod
    def load_state(cls, config: dict, directory: Path) -> ItemToItem:
        state = torch.load(Path(directory) / cls.state_file, weights_only=True)
        model = cls(**config)
        model.pairs = (state["rows"].numpy(), state["cols"].numpy(), state["sim"].numpy())
        model.pop, model.n_items = state["pop"], len(state["pop"]) - 1
        model._build()
        return model


class ItemKNN(ItemToItem):
    name = "itemknn"
    state_file = "itemknn.pt"
    # settings tried on the validation split when ``fit`` is given one (``tune``): window, backward weight,
    # alpha, recency; every combination, on up to ``TUNING_USERS`` validation users
    TUNING = {
        "window": (3, 5, 8),
        "backward_weight": (0.25, 0.5),
        "alpha": (0.5, 0.7),
        "recency": (0.5, 0.6, 0.8),
    }

    def __init__(
        self,
        window: int = 5,
        backward_weight: float = 0.5,
        recency: float = 0.8,
        neighbours: int = 200,
        alpha: float = 0.5,
        tune: bool = True,
    ) -> None:
        super().__init__()
        self.window, self.backward_weight, self.recency = window, backward_weight, recency
        self.neighbours, self.alpha, self.tune = neighbours, alpha, tune

    def config_dict(self) -> dict:
        keys = ("window", "backward_weight", "recency", "neighbours", "alpha")
        return {k: getattr(self, k) for k in keys}

    def fit(
        self, train: SequenceData, valid: EvalSet | None = None, *, time_budget_s=None, progress=None
    ) -> ItemKNN:
        """Count co-occurrences in ``train`` (see the module docstring); with ``valid`` (and ``tune``), the
        settings are the combination of ``TUNING`` with the best validation NDCG@10."""
        t0 = time.perf_counter()
        flat, uid, counts = self._count_items(train)
        if valid is not None and len(valid) and self.tune:
            self._tune(flat, uid, counts, valid, time_budget_s)
        r, c, fwd, bwd = self._cooccurrence(flat, uid, self.window)
        self.pairs = self._strongest(r, c, self._similarity(r, c, fwd + self.backward_weight * bwd, counts))
        self._build()
        self.train_seconds = time.perf_counter() - t0
        report_fitted(progress)
        return self

    def _tune(self, flat, uid, counts, valid: EvalSet, budget_s: float | None) -> None:
        """Every combination of ``TUNING`` on a sample of validation users (the constructor's settings first,
        so a ``budget_s`` that runs out keeps them unless something better was found); keeps the best NDCG@10."""
        started = time.perf_counter()
        sample = self._tuning_sample(valid)
        first = (self.window, self.backward_weight, self.alpha, self.recency)
        grid = sorted(itertools.product(*self.TUNING.values()), key=lambda g: (g[0] != first[0], g != first))
        best, chosen, counted, built = -1.0, first, None, None
        for window, bw, alpha, recency in [first, *(g for g in grid if g != first)]:
            if budget_s and time.perf_counter() - started > budget_s:
                break
            if counted is None or counted[0] != window:  # combinations come grouped by window
                counted = (window, *self._cooccurrence(flat, uid, window))
            _, r, c, fwd, bwd = counted
            if built != (window, bw, alpha):
                self.alpha, built = alpha, (window, bw, alpha)
                self.pairs = self._strongest(r, c, self._similarity(r, c, fwd + bw * bwd, counts))
                self._build()
            self.recency = recency
            score = self._validation_ndcg(sample)
            if score > best:
                best, chosen = score, (window, bw, alpha, recency)
        self.window, self.backward_weight, self.alpha, self.recency = chosen

    def _cooccurrence(self, flat: np.ndarray, uid: np.ndarray, window: int) -> tuple[np.ndarray, ...]:
        """Distinct (a, b) pairs within ``window`` steps of one user: (rows, cols, summed 1/d with b after a,
        summed 1/d with b before a)."""
        rows, cols, fwd, bwd = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)], [np.zeros(0)]
        for d in range(1, window + 1):
            a, b = flat[:-d], flat[d:]
            ok = (uid[:-d] == uid[d:]) & (a > 0) & (b > 0) & (a != b)
            a, b = a[ok], b[ok]
            rows += [a, b]
            cols += [b, a]
            fwd += [np.full(len(a), 1.0 / d), np.zeros(len(a))]
            bwd += [np.zeros(len(a)), np.full(len(a), 1.0 / d)]
        r, c = np.concatenate(rows), np.concatenate(cols)
        key = r * (self.n_items + 1) + c  # sum duplicates
        uniq, inv = np.unique(key, return_inverse=True)
        f, b = np.bincount(inv, weights=np.concatenate(fwd)), np.bincount(inv, weights=np.concatenate(bwd))
        return uniq // (self.n_items + 1), uniq % (self.n_items + 1), f, b

    def _similarity(self, r: np.ndarray, c: np.ndarray, v: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """C[a, b] / (n_a^alpha n_b^(1-alpha))."""
        return v / (np.power(counts[r], self.alpha) * np.power(counts[c], 1.0 - self.alpha) + 1e-12)
