"""A blend of recommenders as one ``Recommender``: neural sequence models' log-probabilities + item-kNN's +
popularity's, each with a weight learned on the validation split (never on test).

Why: on short-sequence data a co-occurrence count and a neural model trade places (the neural model leads on
HR, the count on NDCG), and their errors differ, so the sum of their per-user log-probabilities beats both.
Two seeds of one neural model differ in their errors too, so a part may be a second seed ("transformer-2":
the kind, then the seed's number; ``part_kind``).

score(h) = Σ_part w_part · log p_part(item | h), with log p = log_softmax(scores) for a model whose scores are
logits (``logits=True``: the neural models) and log((s + ε) / Σ(s + ε)) for one whose scores are non-negative
evidence (item-kNN's similarity sums, EASE's positive weights, popularity counts). A user with no known history item gets the
popularity part alone (cold start). ``score_parts`` returns each weighted term, so an explanation can say how
much each part contributed to a slot; they sum to ``score``.

``Blend(parts, weights=None)``; ``fit(train, valid)`` fits every part that is not fitted yet (``fitted``),
then ``learn_weights(valid)``: coordinate ascent over a grid of weights on validation NDCG@10 (the best part
alone keeps weight 1; any other weight may be 0, so the blend is never worse on validation than its best part).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from models.base import EvalSet, Histories, ItemSide, Recommender, SequenceData
from models.baselines import ItemKNN, MostPop
from models.ease import EASE
from models.lstm import LSTMRecommender
from models.metrics import metrics_from_ranks
from models.transformer import TransformerRecommender

PART_CLASSES: dict[str, type[Recommender]] = {
    "lstm": LSTMRecommender,
    "transformer": TransformerRecommender,
    "itemknn": ItemKNN,
    "ease": EASE,
    "mostpop": MostPop,
}
LOGIT_PARTS = {"lstm", "transformer"}  # scores are logits; the others are non-negative evidence
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)  # weights tried for every part but the first
WEIGHT_USERS = 5000  # validation users the weights are learned on (their part scores are kept in memory)
EPS = 1e-3  # evidence floor, relative to a user's mean evidence: an unseen pair is unlikely, not impossible


def part_kind(name: str) -> str:
    """A part's model kind: its name up to a seed suffix ("transformer-2" is a second transformer seed)."""
    return name.split("-", 1)[0]


def part_seed(name: str) -> int:
    """Which seed of its kind a part is: 1 for "transformer", 2 for "transformer-2"."""
    return int(name.split("-", 1)[1]) if "-" in name else 1


def log_probs(name: str, scores: torch.Tensor) -> torch.Tensor:
    """(B, N+1) scores of part ``name`` → per-user log-probabilities over items 1..N (column 0 = -inf)."""
    s = scores.float()
    if part_kind(name) in LOGIT_PARTS:
        s = torch.log_softmax(s[:, 1:], dim=1)
    else:
        s = s[:, 1:].clamp(min=0)
        s = s + EPS * s.mean(1, keepdim=True) + 1e-12
        s = torch.log(s / s.sum(1, keepdim=True))
    return torch.cat([torch.full_like(s[:, :1], float("-inf")), s], dim=1)


class Blend(Recommender):
    name = "blend"
    can_finetune = True

    def __init__(self, parts: dict[str, Recommender], weights: dict[str, float] | None = None):
        if not parts or any(part_kind(n) not in PART_CLASSES for n in parts):
            raise ValueError(
                f"a blend's parts are named from {', '.join(PART_CLASSES)} (and '-2', '-3' … for more seeds); "
                f"got {list(parts)}"
            )
        self.parts = parts
        self.weights = weights or {n: (1.0 if i == 0 else 0.0) for i, n in enumerate(parts)}
        self.n_items = max(p.n_items for p in parts.values())
        self.fitted: set[str] = set()  # parts already fitted (e.g. trained for their own benchmark row)
        self.weight_curve: list[dict] = []  # one dict per weight tried, for the training curve
        self.train_seconds = 0.0

    # --- Recommender: learning ---
    def fit(
        self, train: SequenceData, valid: EvalSet | None = None, *, time_budget_s=None, progress=None
    ) -> Blend:
        t0 = time.perf_counter()
        # the counts first (seconds), then the neural parts share what is left of the budget equally
        neural = [n for n in self.parts if n not in self.fitted and part_kind(n) in LOGIT_PARTS]
        todo = [n for n in self.parts if n not in self.fitted and n not in neural] + neural
        for i, name in enumerate(todo):
            left = None if time_budget_s is None else max(1.0, time_budget_s - (time.perf_counter() - t0))
            share = left / (len(todo) - i) if left is not None and name in neural else left
            self.parts[name].fit(train, valid, time_budget_s=share, progress=progress)
            self.fitted.add(name)
        self.n_items = max(p.n_items for p in self.parts.values())
        if valid is not None and len(valid):
            self.learn_weights(valid)
        self.train_seconds = (
            time.perf_counter() - t0 + sum(p.train_seconds for n, p in self.parts.items() if n not in todo)
        )
        return self

    def finetune(
        self, train: SequenceData, valid: EvalSet | None = None, *, time_budget_s=None, progress=None
    ) -> Blend:
        """Fine-tune the parts that can be (the neural ones) on the slice, then learn the weights again on the
        slice's validation users."""
        tunable = [p for p in self.parts.values() if p.can_finetune]
        for part in tunable:
            share = None if time_budget_s is None else time_budget_s / len(tunable)
            part.finetune(train, valid, time_budget_s=share, progress=progress)
        if valid is not None and len(valid):
            self.learn_weights(valid)
        return self

    def recounted(self, data: SequenceData) -> Blend:
        """The blend with every part ``recounted`` on ``data`` (the neural parts shared, not copied) and the
        same weights."""
        t0 = time.perf_counter()
        blend = Blend({name: part.recounted(data) for name, part in self.parts.items()}, dict(self.weights))
        blend.fitted, blend.weight_curve = set(blend.parts), list(self.weight_curve)
        blend.train_seconds = self.train_seconds + time.perf_counter() - t0
        return blend

    def learn_weights(self, valid: EvalSet) -> dict[str, float]:
        """Coordinate ascent on validation NDCG@10 over ``GRID`` (see the module docstring)."""
        n = min(len(valid), WEIGHT_USERS)
        rows = torch.linspace(0, len(valid) - 1, n).long() if n < len(valid) else torch.arange(len(valid))
        h = Histories(
            *(
                None if t is None else t[rows]
                for t in (valid.histories.items, valid.histories.event_types, valid.histories.gaps)
            )
        )
        targets = valid.targets[rows]
        cached = {name: self._part_log_probs(name, h) for name in self.parts}  # each (n, N+1)
        history = h.items.long()

        def ndcg(weights: dict[str, float]) -> float:
            s = sum(w * cached[name] for name, w in weights.items() if w)  # (n, N+1)
            s = s.scatter(1, history, float("-inf"))
            s[:, 0] = float("-inf")
            ts = s.gather(1, targets.unsqueeze(1))
            ranks = torch.where(torch.isneginf(ts.squeeze(1)), self.n_items, (s > ts).sum(1))
            return metrics_from_ranks(ranks, ks=(10,))["ndcg@10"]

        alone = {name: ndcg({name: 1.0}) for name in self.parts}
        first = max(alone, key=alone.get)  # the best part alone keeps weight 1; the others are added to it
        others = [name for name in self.parts if name != first]
        weights = {name: float(name == first) for name in self.parts}
        best = alone[first]
        self.weight_curve = [
            {**{n: float(n == name) for n in self.parts}, "ndcg@10": v} for name, v in alone.items()
        ]
        for _ in range(2):  # two rounds: a later weight can change what suits an earlier one
            for name in others:
                for w in GRID:
                    trial = {**weights, name: w}
                    score = ndcg(trial)
                    self.weight_curve.append({**trial, "ndcg@10": score})
                    if score > best:
                        best, weights = score, trial
        self.weights = weights
        return weights

    def training_curve(self) -> list[dict]:
        return list(self.weight_curve)

    # --- Recommender: scoring ---
    def _part_log_probs(self, name: str, histories: Histories) -> torch.Tensor:
        part = self.parts[name]
        return log_probs(name, part.score(histories).to("cpu"))[:, : self.n_items + 1]

    def score_parts(self, histories: Histories) -> dict[str, torch.Tensor]:
        """Each part's weighted log-probability (B, N+1); they sum to ``score``. Cold users (no known item in
        their history) get the popularity part alone."""
        known = (histories.items > 0) & (histories.items <= self.n_items)
        cold = ~known.any(1) if "mostpop" in self.parts else torch.zeros(len(histories), dtype=torch.bool)
        out = {}
        for name, w in self.weights.items():
            if w == 0 and not (name == "mostpop" and bool(cold.any())):
                continue
            lp = self._part_log_probs(name, histories)  # (B, N+1)
            weighted = w * lp
            if cold.any():
                weighted[cold] = lp[cold] if name == "mostpop" else 0.0
            out[name] = weighted
        return out

    def score(self, histories: Histories) -> torch.Tensor:
        parts = self.score_parts(histories)
        s = (
            torch.stack(list(parts.values())).sum(0)
            if parts
            else torch.zeros(len(histories), self.n_items + 1)
        )
        s[:, 0] = float("-inf")
        return s

    @property
    def max_len(self) -> int:
        return max(p.max_len for p in self.parts.values())

    @property
    def reads_gaps(self) -> bool:
        return any(p.reads_gaps for n, p in self.parts.items() if self.weights.get(n))

    def item_embeddings(self) -> torch.Tensor | None:
        for part in self.parts.values():  # the first part with item vectors (the neural model)
            emb = part.item_embeddings()
            if emb is not None:
                return emb
        return None

    def add_items(self, n_new: int, side: ItemSide | None = None) -> None:
        for part in self.parts.values():
            part.add_items(n_new, side)
        self.n_items += n_new

    @property
    def device(self) -> torch.device:
        return next(iter(self.parts.values())).device

    def to(self, device: torch.device | str) -> Blend:
        for part in self.parts.values():
            part.to(device)
        return self

    # --- persistence: each part in its own folder ---
    def config_dict(self) -> dict:
        return {"weights": self.weights, "parts": {n: p.config_dict() for n, p in self.parts.items()}}

    def save_state(self, directory: Path) -> None:
        for name, part in self.parts.items():
            (Path(directory) / name).mkdir(parents=True, exist_ok=True)
            part.save_state(Path(directory) / name)

    @classmethod
    def load_state(cls, config: dict, directory: Path) -> Blend:
        parts = {
            n: PART_CLASSES[part_kind(n)].load_state(c, Path(directory) / n)
            for n, c in config["parts"].items()
        }
        blend = cls(parts, config["weights"])
        blend.fitted = set(parts)
        return blend
