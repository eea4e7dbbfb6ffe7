"""SHAP for one slot: which past events (and context) pushed this item's score up or down for this shopper.

The game: the players are the user's real past events inside the model's window (one per history position)
plus the context features the model uses — "time since last visit" (the time-gap buckets, one feature for all
of them) and, for models that take them, caller-given context values. The payoff is the model's score
(logit) of the item. A masked event is replaced by padding (item 0, event type 0, gap 0) at its position; a
masked context feature by its baseline (gaps: 0). Padding positions are not players: they are reported
with an attribution of exactly 0.

``shap.Explainer`` with a zero ``Independent`` masker over a 0/1 "present" vector does the Shapley
bookkeeping: ``algorithm="exact"`` up to ``EXACT_MAX_FEATURES`` players, ``"permutation"`` above. Every call
of the payoff function turns all its coalitions into one (n, T) ``Histories`` batch and scores it in one
forward pass (chunked only when n x catalog would exceed ``SCORE_BUDGET`` floats), so a slot costs one model
call (exact) or one per permutation (~10).

Text for people (``sentence``, ``rules_effect``, ``waterfall_data``) lives in ``core.insight.explain_text``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import polars as pl
import shap
import torch

from core.errors import InputError
from core.insight.explain_text import EVENT_NAMES, event_phrase, rules_effect, sentence, waterfall_data
from models.base import Histories, Recommender

__all__ = [
    "Explanation",
    "FeatureAttribution",
    "explain_item",
    "explain_homepage",
    "global_importance",
    "sentence",
    "rules_effect",
    "waterfall_data",
]

EXACT_MAX_FEATURES = 12  # exact Shapley (2^F coalitions) up to here, permutation sampling above
EXACT_HARD_MAX = 16  # method="exact" refuses more (65k coalitions)
SCORE_BUDGET = 1 << 25  # floats of (rows x catalog) scores per forward pass (128 MB)
GAP_FEATURE = "time since last visit"
PURCHASE = 5  # what an absent event-type tensor means (models.base)


@dataclass
class FeatureAttribution:
    name: str
    kind: str  # "event" | "context"
    position: int | None  # column in the (1, T) history for events; None for context
    item_index: int | None  # dense item id for events (0 = padding / outside the window)
    event_type: int | None  # models.base.EVENT_TYPES code for events
    value: float  # attribution (logit units)
    in_window: bool = True  # False for padding and events older than the model's window (value 0)

    @property
    def is_padding(self) -> bool:
        return self.kind == "event" and not self.in_window


@dataclass
class Explanation:
    item_index: int
    score: float  # the model's score (logit) of the item for this history, as model.score gives it
    base_value: float  # the score with every feature masked (empty history, baseline context)
    features: list[FeatureAttribution]
    method: str  # "exact" | "permutation" | "none" (nothing to attribute)
    n_evals: int  # masked histories the model scored
    seconds: float
    n_model_calls: int = 0

    @property
    def additivity_error(self) -> float:
        return abs(self.base_value + sum(f.value for f in self.features) - self.score)

    def check_additivity(self, tol: float = 1e-4) -> bool:
        """base value + sum of attributions == score, within ``tol``."""
        return self.additivity_error <= tol

    def players(self) -> list[FeatureAttribution]:
        """The attributed features (events in the window, context), in history order."""
        return [f for f in self.features if f.in_window]

    def top(self, n: int = 5, positive_only: bool = False) -> list[FeatureAttribution]:
        """The ``n`` features with the largest |attribution| (largest attribution with ``positive_only``)."""
        fs = [f for f in self.players() if (f.value > 0 or not positive_only)]
        key = (lambda f: -f.value) if positive_only else (lambda f: -abs(f.value))
        return sorted(fs, key=key)[:n]

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "name": [f.name for f in self.features],
                "kind": [f.kind for f in self.features],
                "position": [f.position for f in self.features],
                "item_index": [f.item_index for f in self.features],
                "event_type": [f.event_type for f in self.features],
                "value": [float(f.value) for f in self.features],
                "in_window": [f.in_window for f in self.features],
            },
            schema={"name": pl.Utf8, "kind": pl.Utf8, "position": pl.Int64, "item_index": pl.Int64,
                    "event_type": pl.Int64, "value": pl.Float64, "in_window": pl.Boolean},
        )


# ---------------------------------------------------------------- the game


def _window(model: Recommender, T: int) -> int:
    cfg = getattr(model, "config", None)
    w = getattr(cfg, "max_len", None) or getattr(model, "max_len", None)
    return int(w) if w else T


def _uses_gaps(model: Recommender, h: Histories) -> bool:
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "n_gap_buckets"):
        return int(cfg.n_gap_buckets) > 0
    with torch.inference_mode():  # unknown model: does zeroing the gaps change anything?
        both = Histories(h.items.repeat(2, 1), None if h.event_types is None else h.event_types.repeat(2, 1),
                         torch.cat([h.gaps, torch.zeros_like(h.gaps)]))
        s = model.score(both).float()
    return not torch.equal(s[0, 1:], s[1, 1:])


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
        present = np.asarray(present, dtype=np.float64).reshape(-1, self.n_features)
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
        res = torch.cat(out).numpy()
        return res[:, 0] if res.shape[1] == 1 else res


def _make_game(model, history: Histories, targets: np.ndarray, context, baseline_context, reduce_mean=False):
    if history.items.dim() != 2 or history.items.shape[0] != 1:
        raise InputError(f"explain one shopper at a time: history is {tuple(history.items.shape)}, expected (1, T)",
                         fix="pass history[i:i+1] (a (1, T) Histories)")
    h = history.to("cpu")
    items = h.items[0].long().clone()
    T = items.shape[0]
    real = torch.nonzero(items != 0).flatten()
    in_window = real[-_window(model, T):] if len(real) else real
    items_w = torch.zeros_like(items)
    items_w[in_window] = items[in_window]
    ev = None if h.event_types is None else h.event_types[0].long() * (items_w != 0)
    gaps = None if h.gaps is None else h.gaps[0].long() * (items_w != 0)
    gap_player = bool(gaps is not None and gaps.any() and _uses_gaps(model, h))
    names = list(context or {})
    if names and not callable(getattr(model, "score_with_context", None)):
        raise InputError(f"{type(model).__name__} takes no context features, but context {names} was given",
                         fix="explain without context, or give the model a score_with_context(histories, context)")
    base = baseline_context or {}
    return _Game(
        model=model, items=items_w, event_types=ev, gaps=gaps, positions=in_window.numpy().astype(np.int64),
        gap_player=gap_player, context_names=names,
        context_values=np.array([float(context[k]) for k in names], dtype=np.float64),
        context_baseline=np.array([float(base.get(k, 0.0)) for k in names], dtype=np.float64),
        targets=np.asarray(targets, dtype=np.int64).reshape(-1), reduce_mean=reduce_mean,
    )


def _shapley(game: _Game, method: str, max_evals, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
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
        raise InputError(f"exact SHAP over {F} features needs 2^{F} model evaluations",
                         fix=f'use method="permutation" (or "auto") above {EXACT_MAX_FEATURES} features')
    masker = shap.maskers.Independent(np.zeros((1, F)))
    state = np.random.get_state()
    try:
        if method == "exact":
            explainer = shap.Explainer(game, masker, algorithm="exact")
            evals = 2**F if max_evals == "auto" else max(int(max_evals), 2**F)
        else:
            explainer = shap.Explainer(game, masker, algorithm="permutation", seed=seed)
            evals = "auto" if max_evals == "auto" else max(int(max_evals), 2 * F + 1)
        res = explainer(np.ones((1, F)), max_evals=evals, silent=True)
    finally:
        np.random.set_state(state)
    values = np.asarray(res.values[0], dtype=np.float64).reshape(F, K)
    base = np.asarray(res.base_values[0], dtype=np.float64).reshape(K)
    return values, base, method


def _features(game: _Game, history: Histories, values: np.ndarray) -> list[FeatureAttribution]:
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
        out.append(FeatureAttribution(name, "event", p, i, e, float(values[j]) if j is not None else 0.0,
                                      in_window=j is not None))
    E = len(game.positions)
    if game.gap_player:
        out.append(FeatureAttribution(GAP_FEATURE, "context", None, None, None, float(values[E])))
    for j, k in enumerate(game.context_names):
        out.append(FeatureAttribution(k, "context", None, None, None, float(values[E + int(game.gap_player) + j])))
    return out


def _reference_scores(game: _Game, history: Histories) -> np.ndarray:
    """The model's own score(s) for the untouched history: what the homepage ranked by."""
    h = history.to("cpu")
    ctx = None
    if game.context_names:
        ctx = {k: torch.tensor([v], dtype=torch.float64) for k, v in zip(game.context_names, game.context_values)}
    s = game.score(h, ctx)
    s = s[0, torch.from_numpy(game.targets).to(s.device)].double().cpu().numpy()
    return np.array([s.mean()]) if game.reduce_mean else s


def explain_item(
    model: Recommender,
    history: Histories,
    item_index: int,
    *,
    context: dict[str, float | int] | None = None,
    baseline_context: dict[str, float | int] | None = None,
    max_evals: int | str = "auto",
    seed: int = 0,
    method: str = "auto",
) -> Explanation:
    """SHAP attributions of ``model``'s score of ``item_index`` for one shopper's (1, T) history.

    ``method``: "auto" (exact up to 12 features, else permutation), "exact" or "permutation";
    ``max_evals``: shap's evaluation budget ("auto": 2^F exact, 20·F permutation). Same seed, same result."""
    t0 = time.perf_counter()
    if not 1 <= int(item_index) <= int(model.n_items):
        raise InputError(f"item index {item_index} is not in the model's catalog (1..{model.n_items})")
    game = _make_game(model, history, np.array([int(item_index)]), context, baseline_context)
    score = float(_reference_scores(game, history)[0])
    values, base, used = _shapley(game, method, max_evals, seed)
    return Explanation(
        item_index=int(item_index), score=score, base_value=float(base[0]),
        features=_features(game, history, values[:, 0]), method=used, n_evals=game.n_rows,
        seconds=time.perf_counter() - t0, n_model_calls=game.n_calls,
    )


def explain_items(model: Recommender, history: Histories, item_indices: Sequence[int], *, context=None,
                  baseline_context=None, max_evals="auto", seed: int = 0, method: str = "auto") -> list[Explanation]:
    """``explain_item`` for several items of one shopper in one SHAP run (shared coalitions, K outputs)."""
    t0 = time.perf_counter()
    targets = np.array([int(i) for i in item_indices], dtype=np.int64)
    if not len(targets):
        return []
    game = _make_game(model, history, targets, context, baseline_context)
    scores = _reference_scores(game, history)
    values, base, used = _shapley(game, method, max_evals, seed)
    seconds = time.perf_counter() - t0
    return [
        Explanation(int(t), float(scores[k]), float(base[k]), _features(game, history, values[:, k]), used,
                    game.n_rows, seconds, game.n_calls)
        for k, t in enumerate(targets)
    ]


# ---------------------------------------------------------------- aggregates


def explain_homepage(model: Recommender, history: Histories, item_indices: Sequence[int], *, seed: int = 0,
                     max_evals="auto", method: str = "auto") -> pl.DataFrame:
    """Per past event (and context feature): its attribution summed over every item on the shopper's homepage.

    Columns: name, kind, position, item_index, event_type, attribution (signed sum), abs_attribution
    (sum of |value|), share (of all abs_attribution), n_items; sorted by abs_attribution."""
    exps = explain_items(model, history, item_indices, seed=seed, max_evals=max_evals, method=method)
    rows: dict[str, dict] = {}
    for e in exps:
        for f in e.players():
            r = rows.setdefault(f.name, dict(name=f.name, kind=f.kind, position=f.position, item_index=f.item_index,
                                             event_type=f.event_type, attribution=0.0, abs_attribution=0.0))
            r["attribution"] += f.value
            r["abs_attribution"] += abs(f.value)
    frame = pl.DataFrame(list(rows.values()), schema={
        "name": pl.Utf8, "kind": pl.Utf8, "position": pl.Int64, "item_index": pl.Int64, "event_type": pl.Int64,
        "attribution": pl.Float64, "abs_attribution": pl.Float64})
    total = float(frame["abs_attribution"].sum()) if frame.height else 0.0
    return frame.with_columns(
        share=pl.col("abs_attribution") / total if total > 0 else pl.lit(0.0),
        n_items=pl.lit(len(exps), dtype=pl.Int64),
    ).sort("abs_attribution", descending=True)


def global_importance(
    model: Recommender,
    histories: Histories,
    target: Sequence[int] | np.ndarray,
    item_category: np.ndarray,
    *,
    n_users: int = 100,
    seed: int = 0,
    max_evals="auto",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, pl.DataFrame]:
    """Across a sample of shoppers, which item categories and event types in their histories drive the model's
    score of ``target`` — item indices, or a (N+1,) bool mask; several items: their mean score.

    ``item_category``: (N+1,) category label per item index. Returns {"category": …, "event type": …}, each
    with columns label, attribution (mean per sampled shopper, signed), abs_attribution, n_events, sorted by
    attribution; plus "context" when the model uses context features."""
    t = np.asarray(target)
    targets = np.flatnonzero(t) if t.dtype == bool else t.astype(np.int64).reshape(-1)
    targets = targets[(targets >= 1) & (targets <= int(model.n_items))]
    if not len(targets):
        raise InputError("no target item to explain", fix="pick an item id or a category with items in the catalog")
    items = histories.items.cpu()
    users = np.flatnonzero((items != 0).any(1).numpy())
    rng = np.random.default_rng(seed)
    if len(users) > n_users:
        users = np.sort(rng.choice(users, n_users, replace=False))
    cats = np.asarray(item_category)
    recs: list[tuple[str, str, float]] = []  # (group, label, attribution)
    for n, u in enumerate(users):
        h = Histories(histories.items[u : u + 1],
                      None if histories.event_types is None else histories.event_types[u : u + 1],
                      None if histories.gaps is None else histories.gaps[u : u + 1])
        game = _make_game(model, h, targets, None, None, reduce_mean=True)
        values, _, _ = _shapley(game, "auto", max_evals, seed + n)
        for f in _features(game, h, values[:, 0]):
            if not f.in_window:
                continue
            if f.kind == "event":
                recs.append(("category", str(cats[f.item_index]) if f.item_index < len(cats) else "unknown", f.value))
                recs.append(("event type", EVENT_NAMES.get(f.event_type, str(f.event_type)), f.value))
            else:
                recs.append(("context", f.name, f.value))
        if progress is not None:
            progress(n + 1, len(users))
    raw = pl.DataFrame(recs, schema={"group": pl.Utf8, "label": pl.Utf8, "value": pl.Float64}, orient="row")
    n_u = max(1, len(users))
    out = {}
    for group in ("category", "event type", "context"):
        g = raw.filter(pl.col("group") == group)
        if group == "context" and not g.height:
            continue
        out[group] = (
            g.group_by("label")
            .agg(attribution=pl.col("value").sum() / n_u, abs_attribution=pl.col("value").abs().sum() / n_u,
                 n_events=pl.len())
            .rename({"label": group.replace(" ", "_")})
            .sort("attribution", descending=True)
        )
    return out
