"""Events → model inputs: the item vocabulary, side features and per-user step sequences.

A *step* is a run of consecutive events of one user on one item, collapsed to the strongest
event type (view < click < cart < purchase): predicting "the item you are looking at" again
teaches the model nothing, predicting the next *distinct* item is what a homepage needs.
Models see dense ids only (1..N, 0 = padding); this module owns the mapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from core import store
from models.base import EVENT_TYPES, Histories, ItemSide

# time since the previous step: 1 = first step, then <1 min, <10 min, <1 h, <1 day, <1 week, more
GAP_EDGES_S = np.array([60, 600, 3600, 86_400, 604_800])
N_GAP_BUCKETS = len(GAP_EDGES_S) + 3
N_PRICE_BUCKETS = 11  # 0 unknown + deciles


@dataclass
class Vocab:
    """External item id (string) ↔ dense index 1..N."""

    item_ids: list[str]

    def __post_init__(self) -> None:
        self.index = {item: i + 1 for i, item in enumerate(self.item_ids)}
        self._by_index = np.array(["", *self.item_ids], dtype=object)  # index 0 (padding, unknown) → ""

    def __len__(self) -> int:
        return len(self.item_ids)

    def encode(self, ids) -> np.ndarray:
        return np.array([self.index.get(i, 0) for i in ids], dtype=np.int64)

    def decode(self, idx) -> list[str]:
        idx = np.asarray(idx, dtype=np.int64)
        return self._by_index[np.where((idx > 0) & (idx <= len(self.item_ids)), idx, 0)].tolist()

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.item_ids))

    @classmethod
    def load(cls, path: Path) -> Vocab:
        return cls(json.loads(Path(path).read_text()))


def gap_buckets(ts_seconds: np.ndarray) -> np.ndarray:
    """Gap bucket per step of one user's time-ordered timestamps (seconds)."""
    if len(ts_seconds) == 0:
        return np.zeros(0, dtype=np.int64)
    gaps = np.diff(ts_seconds, prepend=ts_seconds[0])
    out = np.searchsorted(GAP_EDGES_S, gaps, side="right") + 2
    out[0] = 1
    return out.astype(np.int64)


@dataclass
class Catalog:
    """Items in vocabulary order with the side features the model reads."""

    vocab: Vocab
    items: (
        pl.DataFrame
    )  # item_id, title, category, brand, seller_id, seller_tier, price, created_at, in_stock
    side: ItemSide
    categories: list[str]  # code → leaf category path (code 0 = unknown)
    brands: list[str]

    @property
    def n_items(self) -> int:
        return len(self.vocab)


def _codes(values: pl.Series, known: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Codes 1.. for the distinct values (0 = unknown); with ``known``, that code list is kept."""
    filled = values.fill_null("")
    names = known if known is not None else [""] + sorted(v for v in filled.unique().to_list() if v)
    lookup = {v: i for i, v in enumerate(names) if v}
    return np.array([lookup.get(v, 0) for v in filled.to_list()], dtype=np.int64), names


def load_catalog(con, categories: list[str] | None = None, brands: list[str] | None = None) -> Catalog:
    """Every item in the store (catalog or seen in events), in a stable order.

    ``categories`` / ``brands``: the code lists of a trained run, so that side features of
    items added since then get the codes the model learned (unknown values get 0)."""
    items = con.sql(
        """
        SELECT i.item_id, i.title, i.category, i.brand, i.seller_id, s.tier AS seller_tier,
               i.price, i.created_at, coalesce(i.in_stock, TRUE) AS in_stock
        FROM items i LEFT JOIN sellers s USING (seller_id)
        ORDER BY i.item_id
        """
    ).pl()
    vocab = Vocab(items["item_id"].to_list())
    cat, categories = _codes(items["category"], categories)
    brand, brands = _codes(items["brand"], brands)
    price = items["price"].to_numpy().astype(float)
    bucket = np.zeros(len(price), dtype=np.int64)
    known = np.isfinite(price)
    if known.any():
        edges = np.quantile(price[known], np.linspace(0.1, 0.9, 9))
        bucket[known] = np.searchsorted(edges, price[known], side="right") + 1
    pad = lambda a: torch.from_numpy(np.concatenate([[0], a]).astype(np.int64))  # noqa: E731
    side = ItemSide(
        category=pad(cat),
        brand=pad(brand),
        price_bucket=pad(bucket),
        n_categories=len(categories),
        n_brands=len(brands),
        n_price_buckets=N_PRICE_BUCKETS,
    )
    return Catalog(vocab, items, side, categories, brands)


# event type → code, from the one vocabulary (models.base), joined by the SQL below as a registered frame:
# a step keeps its strongest event (codes grow with intent); a removal from the cart counts as the cart
EVENT_CODES = pl.DataFrame(
    {"event_type": list(EVENT_TYPES), "ev": list(EVENT_TYPES.values())},
    schema={"event_type": pl.Utf8, "ev": pl.Int64},
)
_STEPS_PARAMS = {
    "review": "review",
    "removed": EVENT_TYPES["remove_from_cart"],
    "cart": EVENT_TYPES["add_to_cart"],
}
_STEPS_SQL = """
WITH e AS (
    SELECT user_id, item_id, ts, c.ev
    FROM events JOIN hs_event_codes c USING (event_type)
    WHERE event_type <> $review {user_filter}
), r AS (
    SELECT *, sum(CASE WHEN item_id IS DISTINCT FROM prev THEN 1 ELSE 0 END)
                  OVER (PARTITION BY user_id ORDER BY ts, ev, item_id ROWS UNBOUNDED PRECEDING) AS run
    FROM (SELECT *, lag(item_id) OVER (PARTITION BY user_id ORDER BY ts, ev, item_id) AS prev FROM e)
), s AS (
    SELECT user_id, run, any_value(item_id) AS item_id, min(ts) AS ts,
           CASE WHEN max(ev) = $removed THEN $cart ELSE max(ev) END AS ev
    FROM r GROUP BY user_id, run
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY run DESC) AS back FROM s
)
SELECT user_id,
       list(item_id ORDER BY run) AS items,
       list(ev ORDER BY run) AS evs,
       list(epoch(ts) ORDER BY run) AS ts
FROM ranked WHERE back <= $max_steps
GROUP BY user_id ORDER BY user_id
"""


@dataclass
class ShopSequences:
    """Per-user step sequences in dense ids, time order, with event types, gap buckets, times."""

    user_ids: list[str]
    items: list[np.ndarray]
    event_types: list[np.ndarray]
    gaps: list[np.ndarray]
    ts: list[np.ndarray]  # epoch seconds
    catalog: Catalog

    def __len__(self) -> int:
        return len(self.user_ids)

    def histories(self, rows: list[int] | None = None, max_len: int = 50, drop_last: int = 0) -> Histories:
        """Left-padded histories for the given rows (all by default), without their last ``drop_last`` steps."""
        rows = range(len(self)) if rows is None else rows
        out = [np.zeros((len(rows), max_len), dtype=np.int64) for _ in range(3)]
        for r, u in enumerate(rows):
            end = len(self.items[u]) - drop_last
            start = max(0, end - max_len)
            n = end - start
            if n <= 0:
                continue
            for arr, src in zip(out, (self.items, self.event_types, self.gaps)):
                arr[r, max_len - n :] = src[u][start:end]
        return Histories(*(torch.from_numpy(a) for a in out))


def read_steps(con, max_steps: int = 200, user_ids: list[str] | None = None) -> pl.DataFrame:
    """Every user's (or the given users') recent steps as a plain frame: user_id, items (external ids),
    evs (event codes), ts (epoch seconds), each list in time order."""
    # frames registered by name: the locked-down instance does not scan Python variables (core.shared_db)
    frames = {"hs_event_codes": EVENT_CODES}
    if user_ids is not None:
        frames["hs_wanted_users"] = pl.DataFrame(
            {"user_id": [str(u) for u in user_ids]}, schema={"user_id": pl.Utf8}
        )
    wanted = "AND user_id IN (SELECT user_id FROM hs_wanted_users)" if user_ids is not None else ""
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        params = {**_STEPS_PARAMS, "max_steps": int(max_steps)}
        return con.sql(_STEPS_SQL.format(user_filter=wanted), params=params).pl()
    finally:
        for name in frames:
            con.unregister(name)


def steps_from_frame(frame: pl.DataFrame, catalog: Catalog) -> ShopSequences:
    """``read_steps``' frame (from the store, or any other source) in the dense ids of ``catalog``.

    Column-wise over every step at once (a shop's snapshot holds ~20k users): the same arrays, per user,
    as ``Vocab.encode`` and ``gap_buckets`` give."""
    if frame.is_empty():
        return ShopSequences([], [], [], [], [], catalog)
    lengths = frame["items"].list.len().fill_null(0).to_numpy().astype(np.int64)
    rows = frame.filter(pl.Series(lengths > 0))  # exploding an empty list would give one null step
    dense = dict(zip(catalog.vocab.item_ids, range(1, len(catalog.vocab) + 1)))
    items = (
        rows["items"]
        .explode()
        .replace_strict(dense, default=0, return_dtype=pl.Int64)
        .fill_null(0)
        .to_numpy()
    )
    evs = rows["evs"].explode().cast(pl.Int64).to_numpy()
    ts = rows["ts"].explode().cast(pl.Float64).to_numpy()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    gaps = np.searchsorted(GAP_EDGES_S, np.diff(ts, prepend=ts[:1]), side="right").astype(np.int64) + 2
    gaps[starts[lengths > 0]] = 1  # each user's first step
    cut = starts[1:]
    return ShopSequences(
        frame["user_id"].to_list(),
        np.split(items.astype(np.int64), cut),
        np.split(evs.astype(np.int64), cut),
        np.split(gaps, cut),
        np.split(ts.astype(np.float64), cut),
        catalog,
    )


def load_sequences(
    db_path=None, max_steps: int = 200, user_ids: list[str] | None = None, catalog: Catalog | None = None
) -> ShopSequences:
    """Read the store once (one unit of work) and return every user's (or the given users') recent steps.

    ``catalog``: encode with this vocabulary (a trained run's) instead of the store's current one."""
    with store.connect(db_path) as con:
        catalog = catalog or load_catalog(con)
        frame = read_steps(con, max_steps, user_ids)
    return steps_from_frame(frame, catalog)
