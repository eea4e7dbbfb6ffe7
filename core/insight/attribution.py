"""What SHAP gives back, as types: one ``FeatureAttribution`` per player and the ``Explanation`` of one
item's score. Apart from the code that computes them (``core.insight.shapley``) and the code that words
them (``core.insight.explain_text``), so neither needs the other's module for its types."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


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
        return self.kind == "event" and not self.item_index


# ``Explanation.to_frame``: one row per feature
FRAME_SCHEMA = {
    "name": pl.Utf8,
    "kind": pl.Utf8,
    "position": pl.Int64,
    "item_index": pl.Int64,
    "event_type": pl.Int64,
    "value": pl.Float64,
    "in_window": pl.Boolean,
}


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
            schema=FRAME_SCHEMA,
        )
