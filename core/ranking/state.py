"""The nouns of ranking: a shopper, their candidates, the homepage, and the state the stages work on.

``RankingState`` is what ``core.ranking.pipeline`` hands from stage to stage and what each rule kind's
``apply`` reads and changes: which candidates are eligible, their relevance, the current order, the pinned
slots, and the reasons and conflicts noted so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from core.ranking.conditions import Condition
from core.ranking.items import ItemTable
from core.ranking.reasons import MODEL, Reason, ReasonCode


@dataclass
class UserContext:
    user_id: str
    attrs: dict = field(default_factory=dict)
    category_mix: dict[str, float] | None = None  # category path -> share of the shopper's history
    purchased: set[str] = field(default_factory=set)


class Candidates:
    """A shopper's candidates as aligned arrays: the model's top-M plus the items rules need.

    ``table`` is the catalog snapshot the candidates come from and ``rows`` their rows in it, so conditions
    are matched once per snapshot, not once per homepage; without them the candidates' own ``attrs`` are
    the table."""

    def __init__(
        self,
        item_ids: list[str],
        scores: np.ndarray,  # (M,) model scores (logits)
        model_ranks: np.ndarray,  # (M,) 1-based rank in the model's top-M, 0 = added for a rule
        embeddings: np.ndarray | None,  # (M, D); None: gathered from ``vectors`` when first read
        attrs: pl.DataFrame | None = None,  # aligned to item_ids; taken from the table when None
        *,
        table: ItemTable | None = None,
        rows: np.ndarray | None = None,
        vectors: np.ndarray | None = None,  # (N, D) item vectors aligned to the table's rows
    ):
        self.item_ids, self.scores, self.model_ranks = item_ids, scores, model_ranks
        if table is None:
            table, rows = ItemTable(attrs), np.arange(attrs.height)
        self.table, self.rows, self._attrs = table, rows, attrs
        self._embeddings, self._vectors = embeddings, vectors

    @property
    def embeddings(self) -> np.ndarray:
        """(M, D) the candidates' item vectors (only diversity and the preview's metrics read them)."""
        if self._embeddings is None:
            self._embeddings = self._vectors[self.rows]
        return self._embeddings

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def attrs(self) -> pl.DataFrame:
        if self._attrs is None:
            self._attrs = self.table.frame[self.rows.tolist()]
        return self._attrs

    def has(self, name: str) -> bool:
        return self.table.has(name)

    def column(self, name: str, fill) -> np.ndarray:
        """(M,) one attribute, nulls filled."""
        return self.table.column(name, fill)[self.rows]

    def match(self, condition: Condition, now: datetime) -> np.ndarray:
        """(M,) bool: which candidates the condition matches."""
        return self.table.mask(condition, now)[self.rows]

    def top_categories(self) -> np.ndarray:
        return self.table.top_categories()[self.rows]

    def shown_categories(self) -> np.ndarray:
        return self.table.shown_categories()[self.rows]


@dataclass
class Slot:
    slot: int
    item_id: str
    model_score: float
    final_score: float
    model_rank: int
    reasons: list[Reason]

    @property
    def codes(self) -> list[ReasonCode]:
        return [r.code for r in self.reasons]


@dataclass
class Homepage:
    user_id: str
    slots: list[Slot]
    conflicts: list[Reason] = field(default_factory=list)
    rules_applied: list[str] = field(default_factory=list)

    @property
    def item_ids(self) -> list[str]:
        return [s.item_id for s in self.slots]

    def conflict_messages(self) -> list[str]:
        return [c.text() for c in self.conflicts]


def relevance(scores: np.ndarray) -> np.ndarray:
    """Scores as positive relevance (softmax over the candidates), so factors scale sensibly."""
    finite = np.where(np.isfinite(scores), scores, -1e9)
    e = np.exp(finite - finite.max()) if len(finite) else finite
    return e / max(e.sum(), 1e-300)


@dataclass
class RankingState:
    user: UserContext
    c: Candidates
    k: int
    now: datetime
    ok: np.ndarray  # (M,) bool: may be shown (in stock, not bought, not blocked)
    rel: np.ndarray  # (M,) relevance after boosts and buries
    blocked: np.ndarray  # (M,) bool
    exclude_purchased: bool = True
    stocked: np.ndarray | None = None  # (M,) bool: in stock and scored (what a pin needs)
    order: list[int] = field(default_factory=list)  # candidate positions, best first
    scored_top: set[int] = field(default_factory=set)  # the top k by relevance, before any re-ranking
    pinned: dict[int, int] = field(default_factory=dict)  # slot -> candidate
    final: list[int] = field(default_factory=list)
    reasons: dict[int, list[Reason]] = field(default_factory=dict)
    conflicts: list[Reason] = field(default_factory=list)
    swap_codes: set[ReasonCode] = field(default_factory=set)
    swapped: set[int] = field(default_factory=set)  # items holding a re-ranker's swap note

    def note(self, i: int, reason: Reason) -> None:
        noted = self.reasons.setdefault(i, [])
        if reason not in noted:
            noted.append(reason)

    def conflict(self, reason: Reason) -> None:
        self.conflicts.append(reason)

    def match(self, condition: Condition) -> np.ndarray:
        return self.c.match(condition, self.now)

    def put_first(self, top: list[int]) -> None:
        """``top`` first, then the rest of the order as it was."""
        rest = np.ones(len(self.c), dtype=bool)
        rest[top] = False
        order = np.asarray(self.order, dtype=np.int64)
        self.order = top + order[rest[order]].tolist()

    def swapped_in(self, code: ReasonCode, rule_id: str) -> None:
        """After a re-ranker: items now in the top k that were not there by relevance get ``code``, unless
        an earlier re-ranker's swap already names them; earlier swap notes of items pushed out are withdrawn."""
        top = self.order[: self.k]
        in_top = set(top)
        for i, noted in self.reasons.items():
            if i not in in_top:
                noted[:] = [r for r in noted if r.code not in self.swap_codes]
        self.swap_codes.add(code)
        for i in top:
            if i not in self.scored_top and not any(
                r.code in self.swap_codes for r in self.reasons.get(i, ())
            ):
                self.note(i, Reason(code, rule_id))

    def homepage(self, applied: list[str]) -> Homepage:
        c = self.c
        slots = [
            Slot(
                n + 1,
                c.item_ids[i],
                float(c.scores[i]),
                float(self.rel[i]),
                int(c.model_ranks[i]),
                self.reasons.get(i) or [MODEL],
            )
            for n, i in enumerate(self.final)
        ]
        return Homepage(self.user.user_id, slots, self.conflicts, applied)
