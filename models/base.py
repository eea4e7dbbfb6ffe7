"""The types every model shares, and the one interface every recommender answers (after RecBole's
``AbstractRecommender``: the trainer, the evaluator, the registry and SHAP never ask a model what it can do).

Models see dense integer ids only: item index 1..n_items, 0 is padding. The mapping from external string ids
to dense indices (the vocabulary) lives in ``core.data.sequences``.

Histories are **left-padded**: the most recent event sits in the last column, so ``items[:, -1]`` is each
user's latest item. Event types use ``EVENT_TYPES`` below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

# dense codes for event types; 0 is padding
EVENT_TYPES = {
    "view": 1,
    "click": 2,
    "add_to_cart": 3,
    "remove_from_cart": 4,
    "purchase": 5,
    "review": 6,
}
N_EVENT_TYPES = len(EVENT_TYPES) + 1
EVENT_NAMES = {code: name for name, code in EVENT_TYPES.items()}  # code → name


@dataclass
class Histories:
    """A batch of user histories, left-padded to a common length T."""

    items: torch.Tensor  # (B, T) long, 0 = padding
    event_types: torch.Tensor | None = None  # (B, T) long, 0 = padding; None = all purchases
    gaps: torch.Tensor | None = None  # (B, T) long, time-gap bucket before each event, 0 = padding

    def to(self, device: torch.device | str) -> Histories:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Histories(move(self.items), move(self.event_types), move(self.gaps))

    def __len__(self) -> int:
        return self.items.shape[0]

    def rows(self, rows: slice) -> Histories:
        """The users in ``rows`` (a slice of the batch dimension), every tensor alike."""
        take = lambda t: None if t is None else t[rows]  # noqa: E731
        return Histories(self.items[rows], take(self.event_types), take(self.gaps))


@dataclass
class SequenceData:
    """Training sequences, one numpy array per user in time order (dense ids 1..n_items).

    ``target_mask[u][t]`` (bool) says whether the event at position t may serve as a *target* (fine-tuning
    slices); None = every position. ``n_items`` is the catalog size: an item may exist (in the catalog, or as
    a held-out step) without appearing here, so callers that know it pass it; None = the largest id seen."""

    items: list[np.ndarray]
    event_types: list[np.ndarray] | None = None
    gaps: list[np.ndarray] | None = None
    target_mask: list[np.ndarray] | None = None
    n_items: int | None = None

    def __post_init__(self) -> None:
        self.items = [np.asarray(s, dtype=np.int64) for s in self.items]
        largest = max((int(s.max()) for s in self.items if len(s)), default=0)
        if self.n_items is None:
            self.n_items = largest
        elif largest > self.n_items:
            raise ValueError(f"item id {largest} is above the catalog size n_items={self.n_items}")

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class EvalSet:
    """Left-padded histories and one held-out target id per row (leave-one-out)."""

    histories: Histories  # (U, T) left-padded
    targets: torch.Tensor  # (U,) long

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclass
class ItemSide:
    """Catalog side features per dense item index (row 0 = padding), for cold start."""

    category: torch.Tensor | None = None  # (N+1,) long, 0 = unknown
    brand: torch.Tensor | None = None  # (N+1,) long, 0 = unknown
    price_bucket: torch.Tensor | None = None  # (N+1,) long, 0 = unknown
    n_categories: int = 1
    n_brands: int = 1
    n_price_buckets: int = 1


@dataclass
class Progress:
    """One progress report: drives tqdm on the CLI and st.progress in the app."""

    stage: str  # "pretrain" | "finetune" | "fit"
    epoch: int
    step: int
    steps_per_epoch: int
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    fraction: float = 0.0  # 0..1 of the whole job


ProgressCallback = Callable[[Progress], None]


def mask_scores(
    scores: torch.Tensor, items: torch.Tensor, exclude: torch.Tensor | None, exclude_history: bool
) -> torch.Tensor:
    """``scores`` (B, N+1) with -inf on padding (column 0), on ``exclude`` ((B, N+1) or (N+1,) bool) and, with
    ``exclude_history``, on each user's own ``items`` (B, T); in place where it can be."""
    scores[:, 0] = float("-inf")
    if exclude is not None:
        mask = exclude.to(scores.device)
        scores = scores.masked_fill(mask if mask.dim() == 2 else mask.unsqueeze(0), float("-inf"))
    if exclude_history:  # padding ids are 0: column 0 stays -inf
        scores.scatter_(1, items.to(scores.device).long(), float("-inf"))
    return scores


class Recommender(ABC):
    """fit, score a batch of histories, top-k with exclusions, save and load.

    Everything a caller (evaluation, the homepage pipeline, SHAP, the registry) may use is declared here,
    with a default that is right for a model without the capability."""

    name: str = "recommender"
    n_items: int = 0
    train_seconds: float = 0.0  # wall time of the last fit
    max_len: int = 50  # the most recent events a history is cut to before scoring
    reads_gaps: bool = False  # whether time-gap buckets change the scores (SHAP makes them a player)
    context_features: tuple[str, ...] = ()  # names ``score_with_context`` reads; empty: it reads none
    can_finetune: bool = False  # whether ``finetune`` continues training on a slice
    max_items: int | None = None  # the largest catalog ``fit`` takes (None: any size)
    history: list[dict] | tuple = ()  # one dict per epoch of the last fit (losses, validation metrics)
    recounts: bool = False  # whether ``recounted`` fits again: a count model, whose fit takes seconds

    # --- learning ---
    def fit(
        self,
        train: SequenceData,
        valid: EvalSet | None = None,
        *,
        time_budget_s: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Recommender:
        """Learn from ``train`` (its ``n_items`` is the catalog size); ``valid`` may steer early stopping or
        the choice of settings, never the test items. Stops within ``time_budget_s``. Returns ``self``. Every
        model that learns implements it; a model given its scores (a test double) may not."""
        raise NotImplementedError(f"{type(self).__name__} has no fit()")

    def finetune(
        self,
        train: SequenceData,
        valid: EvalSet | None = None,
        *,
        time_budget_s: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Recommender:
        """Continue from the fitted state on the targets ``train.target_mask`` selects (``can_finetune``)."""
        raise NotImplementedError(f"{self.name} cannot be fine-tuned")

    def recounted(self, data: SequenceData) -> Recommender:
        """Once every setting is chosen on validation: the model counted again on ``data``, every step it may
        know (the validation steps too), so the newest steps count. On Beauty's validation split item-kNN
        gains 10 % HR@10 from one more step per user (docs/BENCHMARKS.md). A count model (``recounts``, a fit
        of seconds) returns a new model fitted on ``data`` with its chosen settings, its seconds added to the
        fit's; a model that trains returns itself (training again would double its budget). Never changes
        ``self``: the served model is shared by every session's thread."""
        if not self.recounts:
            return self
        model = type(self)(**self.config_dict()).fit(data)  # without a validation split: nothing is tuned
        model.train_seconds += self.train_seconds
        return model

    def training_curve(self) -> list[dict]:
        """One dict per epoch of the last fit (losses, validation metrics); empty without epochs."""
        return list(self.history)

    # --- scoring ---
    @abstractmethod
    def score(self, histories: Histories) -> torch.Tensor:
        """Scores for every item: (B, n_items + 1); column 0 (padding) is -inf."""

    def score_parts(self, histories: Histories) -> dict[str, torch.Tensor]:
        """The score as a sum of named parts, each (B, N+1): what an explanation can say each part added.
        A single model is one part."""
        return {self.name: self.score(histories)}

    def score_with_context(self, histories: Histories, context: dict[str, torch.Tensor]) -> torch.Tensor:
        """``score`` with per-user context values (name -> (B,) tensor) for ``context_features``."""
        raise NotImplementedError(f"{self.name} reads no context features")

    def top_k(
        self,
        histories: Histories,
        k: int,
        exclude: torch.Tensor | None = None,
        exclude_history: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, indices), each (B, k). ``exclude`` is a (B, N+1) or (N+1,) bool mask
        applied before top-k; with ``exclude_history`` the user's own items are excluded."""
        scores = mask_scores(
            self.score(histories).float(), histories.items, exclude, exclude_history
        )  # (B, N+1)
        k = min(k, scores.shape[1] - 1)
        return torch.topk(scores, k, dim=1)

    def item_embeddings(self) -> torch.Tensor | None:
        """(N+1, D) item vectors the model scores with (row 0 = padding), for diversity and similar items;
        None for a model without them (callers fall back to catalog features)."""
        return None

    def add_items(self, n_new: int, side: ItemSide | None = None) -> None:
        """Append ``n_new`` catalog items (ids n_items+1..n_items+n_new) never seen in training (cold start);
        ``side`` is the full (N_new+1,) side-feature table."""
        raise NotImplementedError(f"{self.name} cannot take new items")

    # --- where it lives ---
    @property
    def device(self) -> torch.device:
        """Where the model's tensors live; scoring inputs are moved there."""
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> Recommender:
        """Move the model's tensors to ``device``; returns ``self``."""
        return self

    # --- persistence (models.registry reads and writes the folder) ---
    def config_dict(self) -> dict:
        """The settings that rebuild this model (JSON-serialisable); ``load`` reads them back."""
        return {}

    def save_state(self, directory: Path) -> None:
        """Write the fitted state (tensors) into ``directory``; ``load_state`` reads it back exactly."""
        raise NotImplementedError(f"{self.name} cannot be saved")

    @classmethod
    def load_state(cls, config: dict, directory: Path) -> Recommender:
        """The model ``save_state`` wrote into ``directory``, built from ``config_dict()``'s settings."""
        raise NotImplementedError(f"{cls.__name__} cannot be loaded")
