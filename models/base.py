"""The one interface every recommender answers (after RecBole's ``full_sort_predict``).

Models see dense integer ids only: item index 1..n_items, 0 is padding. The mapping from
external string ids to dense indices (the vocabulary) lives in ``core.data.sequences``.

Histories are **left-padded**: the most recent event sits in the last column, so
``items[:, -1]`` is each user's latest item. Event types use ``EVENT_TYPES`` below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

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


class Recommender(ABC):
    """fit, score a batch of histories, top-k with exclusions.

    Everything a caller (evaluation, the homepage pipeline, SHAP, the registry) may use is declared here,
    with a default that is right for a model without the capability, so no caller asks a model what it can
    do (RecBole's ``AbstractRecommender``)."""

    name: str = "recommender"
    n_items: int = 0
    train_seconds: float = 0.0  # wall time of the last fit
    max_len: int = 50  # the most recent events a history is cut to before scoring
    reads_gaps: bool = False  # whether time-gap buckets change the scores (SHAP makes them a player)

    @property
    def device(self) -> torch.device:
        """Where the model's tensors live; scoring inputs are moved there."""
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> Recommender:
        """Move the model's tensors to ``device``; returns ``self``."""
        return self

    def item_embeddings(self) -> torch.Tensor | None:
        """(N+1, D) item vectors the model scores with (row 0 = padding), for diversity and similar items;
        None for a model without them (callers fall back to catalog features)."""
        return None

    context_features: tuple[str, ...] = ()  # names ``score_with_context`` reads; empty: it reads none

    def score_with_context(self, histories: Histories, context: dict[str, torch.Tensor]) -> torch.Tensor:
        """``score`` with per-user context values (name -> (B,) tensor) for ``context_features``."""
        raise NotImplementedError(f"{self.name} reads no context features")

    def training_curve(self) -> list[dict]:
        """One dict per epoch of the last fit (losses, validation metrics); empty without epochs."""
        return []

    def fit(self, train, **kwargs) -> Recommender:
        """Learn from training sequences (``models.train.SequenceData`` or a list of dense-id sequences in
        time order); returns ``self``. Models that need no training may keep this default."""
        raise NotImplementedError(f"{type(self).__name__} has no fit()")

    @abstractmethod
    def score(self, histories: Histories) -> torch.Tensor:
        """Scores for every item: (B, n_items + 1); column 0 (padding) is -inf."""

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
