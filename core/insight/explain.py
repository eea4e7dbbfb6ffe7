"""SHAP for one slot: which past events (and context) pushed this item's score up or down for this shopper.

The game (players, masker, batching) is ``core.insight.shapley``; text for people (``sentence``,
``rules_effect``, ``waterfall_data``) is ``core.insight.explain_text``. Both are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
import torch

from core.errors import InputError
from core.insight.attribution import FRAME_SCHEMA, Explanation, FeatureAttribution
from core.insight.explain_text import EVENT_NAMES, rules_effect, sentence, waterfall_data
from core.insight.shapley import EXACT_MAX_FEATURES, GAP_FEATURE, features_of, make_game, shapley_values
from models.base import Histories, Recommender

__all__ = [
    "EXACT_MAX_FEATURES",
    "GAP_FEATURE",
    "Explanation",
    "FeatureAttribution",
    "explain_item",
    "explain_items",
    "warm_up",
    "explain_homepage",
    "part_lifts",
    "global_importance",
    "sentence",
    "rules_effect",
    "waterfall_data",
]


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

    ``method``: "auto" (exact up to ``EXACT_MAX_FEATURES`` features, else permutation), "exact" or "permutation";
    ``max_evals``: shap's evaluation budget ("auto": 2^F exact, 20·F permutation). Same seed, same result."""
    if not 1 <= int(item_index) <= int(model.n_items):
        raise InputError(f"item index {item_index} is not in the model's catalog (1..{model.n_items})")
    return explain_items(
        model,
        history,
        [int(item_index)],
        context=context,
        baseline_context=baseline_context,
        max_evals=max_evals,
        seed=seed,
        method=method,
    )[0]


def explain_items(
    model: Recommender,
    history: Histories,
    item_indices: Sequence[int],
    *,
    context=None,
    baseline_context=None,
    max_evals="auto",
    seed: int = 0,
    method: str = "auto",
) -> list[Explanation]:
    """``explain_item`` for several items of one shopper in one SHAP run (shared coalitions, K outputs)."""
    t0 = time.perf_counter()
    targets = np.array([int(i) for i in item_indices], dtype=np.int64)
    if not len(targets):
        return []
    game = make_game(model, history, targets, context, baseline_context)
    scores = game.reference
    values, base, used = shapley_values(game, method, max_evals, seed)
    seconds = time.perf_counter() - t0
    return [
        Explanation(
            int(t),
            float(scores[k]),
            float(base[k]),
            features_of(game, history, values[:, k]),
            used,
            game.n_rows,
            seconds,
            game.n_calls,
        )
        for k, t in enumerate(targets)
    ]


def part_lifts(model: Recommender, history: Histories, item_index: int) -> dict[str, float]:
    """How far each part of the model's score (``score_parts``: a blend's weighted parts, a single model's one)
    lifts ``item_index`` above the catalog's average item for this (1, T) history: w·(s(item) − mean_j s(j)).
    The lifts sum to the whole score's lift, so they say how much each part put the item where it is."""
    with torch.no_grad():
        parts = model.score_parts(history)
    lifts = {}
    for name, scores in parts.items():
        row = scores[0, 1:].float()  # (N,)
        finite = row[torch.isfinite(row)]
        lifts[name] = float(row[int(item_index) - 1] - finite.mean()) if len(finite) else 0.0
    return lifts


class _Constant(Recommender):
    n_items = 2

    def score(self, histories: Histories) -> torch.Tensor:
        s = (histories.items != 0).sum(1, keepdim=True).double().repeat(1, 3)
        s[:, 0] = float("-inf")
        return s


def warm_up() -> float:
    """Compile shap's numba kernels (seconds, once per process) on a trivial model, e.g. when an app starts,
    so the first real explanation is not the slow one. Returns the seconds it took."""
    t0 = time.perf_counter()
    h = Histories(torch.tensor([[0, 1, 2]]))
    explain_item(_Constant(), h, 1, method="exact")
    explain_item(_Constant(), h, 1, method="permutation")
    return time.perf_counter() - t0


# ---------------------------------------------------------------- aggregates


def explain_homepage(
    model: Recommender,
    history: Histories,
    item_indices: Sequence[int],
    *,
    seed: int = 0,
    max_evals="auto",
    method: str = "auto",
) -> pl.DataFrame:
    """Per past event (and context feature): its attribution summed over every item on the shopper's homepage.

    Columns: name, kind, position, item_index, event_type, attribution (signed sum), abs_attribution
    (sum of |value|), share (of all abs_attribution), n_items; sorted by abs_attribution."""
    exps = explain_items(model, history, item_indices, seed=seed, max_evals=max_evals, method=method)
    players = [e.to_frame().filter(pl.col("in_window")) for e in exps]
    frame = (
        (pl.concat(players) if players else pl.DataFrame(schema=FRAME_SCHEMA))
        .group_by("name", maintain_order=True)
        .agg(
            pl.col("kind", "position", "item_index", "event_type").first(),
            attribution=pl.col("value").sum(),
            abs_attribution=pl.col("value").abs().sum(),
        )
    )
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
        raise InputError(
            "no target item to explain", fix="pick an item id or a category with items in the catalog"
        )
    items = histories.items.cpu()
    users = np.flatnonzero((items != 0).any(1).numpy())
    rng = np.random.default_rng(seed)
    if len(users) > n_users:
        users = np.sort(rng.choice(users, n_users, replace=False))
    cats = np.asarray(item_category)
    recs: list[tuple[str, str, float]] = []  # (group, label, attribution)
    for n, u in enumerate(users):
        h = histories.rows(slice(u, u + 1))
        game = make_game(model, h, targets, None, None, reduce_mean=True)
        values, _, _ = shapley_values(game, "auto", max_evals, seed + n)
        recs += _labelled(features_of(game, h, values[:, 0]), cats)
        if progress is not None:
            progress(n + 1, len(users))
    return _by_group(recs, max(1, len(users)))


def _labelled(features: list[FeatureAttribution], cats: np.ndarray) -> list[tuple[str, str, float]]:
    """(group, label, attribution) per attributed feature: an event counts for its item's category and its
    event type, a context feature for itself."""
    recs = []
    for f in features:
        if not f.in_window:
            continue
        if f.kind == "event":
            recs.append(
                ("category", str(cats[f.item_index]) if f.item_index < len(cats) else "unknown", f.value)
            )
            recs.append(("event type", EVENT_NAMES.get(f.event_type, str(f.event_type)), f.value))
        else:
            recs.append(("context", f.name, f.value))
    return recs


def _by_group(recs: list[tuple[str, str, float]], n_users: int) -> dict[str, pl.DataFrame]:
    raw = pl.DataFrame(recs, schema={"group": pl.Utf8, "label": pl.Utf8, "value": pl.Float64}, orient="row")
    out = {}
    for group in ("category", "event type", "context"):
        g = raw.filter(pl.col("group") == group)
        if group == "context" and not g.height:
            continue
        out[group] = (
            g.group_by("label")
            .agg(
                attribution=pl.col("value").sum() / n_users,
                abs_attribution=pl.col("value").abs().sum() / n_users,
                n_events=pl.len(),
            )
            .rename({"label": group.replace(" ", "_")})
            .sort("attribution", descending=True)
        )
    return out
