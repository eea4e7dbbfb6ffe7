"""The coalition game behind ``core.insight.explain``: masked histories in, one batched forward pass, shap.

Players: the shopper's real past events inside the model's window (one per history position), plus the
context features the model uses: "time since last visit" (all the time-gap buckets, one feature) and
caller-given context values for models with ``score_with_context``. Payoff: the model's score (logit) of the
target item(s). A masked event becomes padding (item 0, event type 0, gap 0) at its position; a masked
context feature takes its baseline (gaps: 0). Padding is no player; it is reported with exactly 0.

shap does the Shapley bookkeeping over a 0/1 "present" vector (``PresenceMasker``: a zero-baseline masker):
``algorithm="exact"`` up to ``EXACT_MAX_FEATURES`` players, ``"permutation"`` above. Each payoff call turns
all its coalitions into one (n, T) ``Histories`` batch and scores it in one forward pass under
``torch.inference_mode`` (chunked only when n x catalog exceeds ``SCORE_BUDGET`` floats). The permutation
explainer asks once per permutation; its permutations depend on the seed only, so a recording pass collects
every coalition first and one forward pass scores them all (``_prefetched_permutation``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import shap
import torch
from shap.utils import MaskedModel

from core.errors import InputError
from core.insight.attribution import FeatureAttribution
from core.insight.explain_text import event_phrase
from models.base import Histories, Recommender

EXACT_MAX_FEATURES = 8  # exact Shapley (2^F coalitions) up to here, permutation sampling above: at 8
# players 2^F = 256 is about what permutation sampling asks (~20 F); at 12 exact asked 4,096, seconds a slot
EXACT_HARD_MAX = 16  # method="exact" refuses more (65k coalitions)
SCORE_BUDGET = 1 << 25  # floats of (rows x catalog) scores per forward pass (128 MB)
GAP_FEATURE = "time since last visit"
PURCHASE = 5  # what an absent event-type tensor means (models.base)


# ---------------------------------------------------------------- the game


def _window(model: Recommender, T: int) -> int:
    return min(int(model.max_len), T)


@dataclass
class _Game:
    """One user's coalition game: present-vectors (n, F) -> masked Histories -> scores of the target items."""

    model: Recommender
    items: torch.Tensor  # (T,) long, events outside the window already zeroed
    event_types: torch.Tensor | None  # (T,)
    gaps: torch.Tensor | None  # (T,)
    positions: np.ndarray  # (E,) history positions of the event players
    gap_player: bool
    context_names: list[str]
    context_values: np.ndarray  # (C,)
    context_baseline: np.ndarray  # (C,)
    targets: np.ndarray  # (K,) item indices; K outputs, or one output (their mean) with ``reduce_mean``
    reduce_mean: bool = False
    reference: np.ndarray | None = None  # the model's score(s) of the untouched history, (K,) or (1,)
    n_rows: int = 0
    n_calls: int = 0
    _call: Callable | None = field(default=None, repr=False)

    @property
    def n_features(self) -> int:
        return len(self.positions) + int(self.gap_player) + len(self.context_names)

    def histories(self, present: np.ndarray) -> tuple[Histories, dict[str, torch.Tensor] | None]:
        n, E = present.shape[0], len(self.positions)
        on = torch.from_numpy(present > 0.5)  # (n, F)
        keep = torch.ones(n, self.items.shape[0], dtype=torch.bool)
        keep[:, torch.from_numpy(self.positions)] = on[:, :E]
        items = self.items.unsqueeze(0) * keep
        ev = None if self.event_types is None else self.event_types.unsqueeze(0) * keep
        gaps = None
        if self.gaps is not None:
            gaps = self.gaps.unsqueeze(0) * keep
            if self.gap_player:
                gaps = gaps * on[:, E : E + 1]
        ctx = None
        if self.context_names:
            c0 = E + int(self.gap_player)
            vals = np.where(present[:, c0:] > 0.5, self.context_values, self.context_baseline)  # (n, C)
            ctx = {k: torch.from_numpy(vals[:, j].copy()) for j, k in enumerate(self.context_names)}
        return Histories(items, ev, gaps), ctx

    def score(self, h: Histories, ctx: dict[str, torch.Tensor] | None) -> torch.Tensor:
        self.n_calls += 1
        with torch.inference_mode():
            if ctx is not None:
                return self.model.score_with_context(h, ctx)
            return self.model.score(h)

    def __call__(self, present: np.ndarray) -> np.ndarray:
        present = np.asarray(present, dtype=np.float64)
        present = present.reshape(1, -1) if present.ndim == 1 else present
        n = present.shape[0]
        self.n_rows += n
        chunk = max(1, SCORE_BUDGET // max(1, int(self.model.n_items) + 1))
        tgt = torch.from_numpy(self.targets.astype(np.int64))
        out = []
        for a in range(0, n, chunk):
            h, ctx = self.histories(present[a : a + chunk])
            s = self.score(h, ctx)
            s = s[:, tgt.to(s.device)].double().cpu()  # (n, K)
            out.append(s.mean(1, keepdim=True) if self.reduce_mean else s)
        return torch.cat(out).numpy()  # always 2-D: one set of shap's numba kernels to compile, not two


def make_game(model, history: Histories, targets: np.ndarray, context, baseline_context, reduce_mean=False):
    if history.items.dim() != 2 or history.items.shape[0] != 1:
        raise InputError(
            f"explain one shopper at a time: history is {tuple(history.items.shape)}, expected (1, T)",
            fix="pass history[i:i+1] (a (1, T) Histories)",
        )
    h = history.to("cpu")
    items = h.items[0].long().clone()
    T = items.shape[0]
    real = torch.nonzero(items != 0).flatten()
    in_window = real[-_window(model, T) :] if len(real) else real
    items_w = torch.zeros_like(items)
    items_w[in_window] = items[in_window]
    ev = None if h.event_types is None else h.event_types[0].long() * (items_w != 0)
    gaps = None if h.gaps is None else h.gaps[0].long() * (items_w != 0)
    has_gaps = bool(gaps is not None and gaps.any())
    names = list(context or {})
    unread = [n for n in names if n not in model.context_features]
    if unread:
        raise InputError(
            f"{type(model).__name__} reads no context feature {unread}",
            fix=f"explain without context, or with the features it reads: {list(model.context_features)}",
        )
    base = baseline_context or {}
    game = _Game(
        model=model,
        items=items_w,
        event_types=ev,
        gaps=gaps,
        positions=in_window.numpy().astype(np.int64),
        gap_player=has_gaps and model.reads_gaps,
        context_names=names,
        context_values=np.array([float(context[k]) for k in names], dtype=np.float64),
        context_baseline=np.array([float(base.get(k, 0.0)) for k in names], dtype=np.float64),
        targets=np.asarray(targets, dtype=np.int64).reshape(-1),
        reduce_mean=reduce_mean,
    )
    ctx = {
        k: torch.full((1,), v, dtype=torch.float64) for k, v in zip(names, game.context_values, strict=True)
    }
    s = game.score(h, ctx or None)
    ref = s[0, torch.from_numpy(game.targets).to(s.device)].double().cpu().numpy()
    game.reference = np.array([ref.mean()]) if reduce_mean else ref
    return game


class PresenceMasker(shap.maskers.Masker):
    """shap masker over a 0/1 "present" vector: x = ones, background = one row of zeros. Behaves like
    ``shap.maskers.Independent(np.zeros((1, F)))`` but does shap's delta masking in plain numpy, which spares
    the ~15 s numba compile of the tabular masker's kernel on a process's first explanation."""

    def __init__(self, n_features: int):
        self.n = n_features
        self.shape = (1, n_features)
        self.clustering = None
        self.supports_delta_masking = True

    def invariants(self, x: np.ndarray) -> np.ndarray:
        return np.zeros((1, self.n), dtype=bool)  # every feature differs from its (zero) baseline

    def __call__(self, mask: np.ndarray, x: np.ndarray):
        mask = self._standardize_mask(mask, x)
        mask = np.asarray(mask)
        if not np.issubdtype(mask.dtype, np.integer):  # one full boolean mask
            return (mask.astype(np.float64).reshape(1, self.n),)
        # delta masks: each row flips the features listed (negative -i-1 = "flip i and keep going")
        noop = MaskedModel.delta_mask_noop_value
        ends = mask >= 0
        row = np.concatenate([[0], np.cumsum(ends)[:-1]])
        idx = np.where(mask < 0, -mask - 1, mask)
        flip = mask != noop
        toggles = np.zeros((int(ends.sum()), self.n), dtype=np.int64)
        np.add.at(toggles, (row[flip], idx[flip]), 1)
        toggles %= 2
        varying = toggles.any(1)
        varying[0] = True
        return ((np.cumsum(toggles, axis=0) % 2).astype(np.float64),), varying.reshape(-1, 1)


class _Recorder:
    """Stands in for the game on a first pass: keeps the coalitions shap asks for, answers zeros."""

    def __init__(self, k: int):
        self.k, self.asked = k, []

    def __call__(self, present: np.ndarray) -> np.ndarray:
        self.asked.append(np.array(present, dtype=np.float64, copy=True))
        return np.zeros((len(present), self.k))


class _Replay:
    """Second pass: the same coalitions in the same order (same seed) get the outputs scored in one go."""

    def __init__(self, asked: list[np.ndarray], outputs: np.ndarray, game: _Game):
        self.asked, self.game, self.i = asked, game, 0
        ends = np.cumsum([len(a) for a in asked])
        self.outputs = np.split(outputs, ends[:-1])

    def __call__(self, present: np.ndarray) -> np.ndarray:
        i, self.i = self.i, self.i + 1
        if i < len(self.asked) and np.array_equal(present, self.asked[i]):
            return self.outputs[i]
        return self.game(present)  # shap asked for something else: score it (never seen; kept correct)


def _prefetched_permutation(game: _Game, F: int, K: int, evals, seed: int):
    """shap's permutation explainer draws its permutations from the seed alone, never from the outputs, so
    a recording pass tells which coalitions it will need; one forward pass scores them all."""
    rec = _Recorder(K)
    shap.Explainer(rec, PresenceMasker(F), algorithm="permutation", seed=seed)(
        np.ones((1, F)), max_evals=evals, silent=True
    )
    outputs = game(np.concatenate(rec.asked))
    replay = _Replay(rec.asked, outputs, game)
    return shap.Explainer(replay, PresenceMasker(F), algorithm="permutation", seed=seed)(
        np.ones((1, F)), max_evals=evals, silent=True
    )


def shapley_values(game: _Game, method: str, max_evals, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Attributions (F, K) and base values (K,) with shap; the global numpy RNG is left as it was."""
    F = game.n_features
    K = 1 if (game.reduce_mean or len(game.targets) == 1) else len(game.targets)
    if method == "auto":
        method = "exact" if F <= EXACT_MAX_FEATURES else "permutation"
    if method not in ("exact", "permutation"):
        raise InputError(f"unknown SHAP method '{method}'", fix='use "auto", "exact" or "permutation"')
    if F == 0:
        empty = game(np.zeros((1, 0))).reshape(1, K)
        return np.zeros((0, K)), empty[0], "none"
    if method == "exact" and F > EXACT_HARD_MAX:
        raise InputError(
            f"exact SHAP over {F} features needs 2^{F} model evaluations",
            fix=f'use method="permutation" (or "auto") above {EXACT_MAX_FEATURES} features',
        )
    state = np.random.get_state()
    try:
        if method == "exact":  # shap asks for all 2^F coalitions in one call
            evals = 2**F if max_evals == "auto" else max(int(max_evals), 2**F)
            res = shap.Explainer(game, PresenceMasker(F), algorithm="exact")(
                np.ones((1, F)), max_evals=evals, silent=True
            )
        else:  # shap asks once per permutation: record them all, score them in one pass, replay
            evals = "auto" if max_evals == "auto" else max(int(max_evals), 2 * F + 1)
            res = _prefetched_permutation(game, F, K, evals, seed)
    finally:
        np.random.set_state(state)
    values = np.asarray(res.values[0], dtype=np.float64).reshape(F, K)
    base = np.asarray(res.base_values[0], dtype=np.float64).reshape(K)
    return values, base, method


def features_of(game: _Game, history: Histories, values: np.ndarray) -> list[FeatureAttribution]:
    """One row per history position (players with their value, padding/out-of-window with 0) + context."""
    items = history.items[0].cpu().long()
    ev = None if history.event_types is None else history.event_types[0].cpu().long()
    idx = {int(p): j for j, p in enumerate(game.positions)}
    out = []
    for p in range(items.shape[0]):
        i = int(items[p])
        e = (int(ev[p]) if ev is not None else PURCHASE) if i else 0
        j = idx.get(p)
        name = f"{event_phrase(e, f'item {i}')} (position {p})" if i else f"padding (position {p})"
        if i and j is None:
            name = f"{name}, outside the model's window"
        out.append(
            FeatureAttribution(
                name, "event", p, i, e, float(values[j]) if j is not None else 0.0, in_window=j is not None
            )
        )
    E = len(game.positions)
    if game.gap_player:
        out.append(FeatureAttribution(GAP_FEATURE, "context", None, None, None, float(values[E])))
    for j, k in enumerate(game.context_names):
        out.append(
            FeatureAttribution(k, "context", None, None, None, float(values[E + int(game.gap_player) + j]))
        )
    return out
