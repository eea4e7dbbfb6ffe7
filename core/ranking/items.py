"""A catalog snapshot as the rules see it: item attributes plus what rules ask of them, computed once.

``ItemTable`` owns its caches (a condition's mask, a filled column, the top-level categories), so they live
exactly as long as the snapshot that made them: the shop context's table serves every homepage until the
next refresh, and a table built for a test's candidates serves that test.
"""

from __future__ import annotations

import threading
from datetime import datetime

import numpy as np
import polars as pl

from core import category_paths
from core.ranking.conditions import Condition

MAX_MASKS = 512  # distinct (condition, clock) masks kept per snapshot; a rule set has a handful


class ItemTable:
    def __init__(self, frame: pl.DataFrame):
        self.frame = frame
        self._masks: dict[tuple[Condition, datetime], np.ndarray] = {}
        self._columns: dict[tuple[str, object], np.ndarray] = {}
        self._tops: np.ndarray | None = None
        self._shown: np.ndarray | None = None
        self._top_groups: list[np.ndarray] | None = None
        self._lock = threading.Lock()  # sessions are threads: one writer of a cache at a time

    @property
    def height(self) -> int:
        return self.frame.height

    def has(self, name: str) -> bool:
        return name in self.frame.columns

    def mask(self, condition: Condition, now: datetime) -> np.ndarray:
        """(N,) bool over the table's rows: which items the condition matches at ``now``."""
        key = (condition, now)
        hit = self._masks.get(key)
        if hit is None:
            hit = condition.matches(self.frame, now)
            with self._lock:
                if len(self._masks) >= MAX_MASKS:
                    self._masks.clear()
                self._masks[key] = hit
        return hit

    def column(self, name: str, fill) -> np.ndarray:
        """(N,) one attribute as numpy, nulls filled with ``fill``."""
        key = (name, fill)
        hit = self._columns.get(key)
        if hit is None:
            hit = self.frame[name].fill_null(fill).to_numpy()
            with self._lock:
                self._columns[key] = hit
        return hit

    def top_categories(self) -> np.ndarray:
        """(N,) object: each item's top-level category ('unknown' when missing)."""
        if self._tops is None:
            self._tops = category_paths.top_levels(self.frame["category"].to_list())
        return self._tops

    def in_stock_by_top_category(self) -> list[np.ndarray]:
        """Rows of the in-stock items of each top-level category, one array per category: what a calibration
        choosing from every category needs among the candidates, computed once per snapshot."""
        if self._top_groups is None:
            _, codes = np.unique(self.top_categories(), return_inverse=True)
            stock = (
                self.column("in_stock", True).astype(bool)
                if self.has("in_stock")
                else np.ones(self.height, bool)
            )
            rows = np.flatnonzero(stock)
            code = codes[rows]
            order = np.argsort(code, kind="stable")
            self._top_groups = np.split(rows[order], np.flatnonzero(np.diff(code[order])) + 1)
        return self._top_groups

    def shown_categories(self) -> np.ndarray:
        """(N,) object: each item's category as a product card shows it (its path, 'uncategorised' when
        missing): what 'categories covered' counts."""
        if self._shown is None:
            self._shown = np.array(
                [c or "uncategorised" for c in self.frame["category"].to_list()], dtype=object
            )
        return self._shown
