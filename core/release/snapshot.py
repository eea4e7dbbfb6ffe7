"""What the ranking reads, gathered for a release artifact: with ``core.release.diff.publish_impact``, the
one place ``core.release`` reaches into ``core.ranking``'s internals (its snapshot and its cold-start
popularity), so a change of their API changes only this function.

The draft is "the latest saved rule-set version + the active model run": activating a run changes the
draft that the preview shows; shoppers get it only through a publish, which snapshots it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from core import store
from core.release.privacy import pseudonym
from models.base import EVENT_NAMES

USER_SCHEMA = {
    "user_id": pl.Utf8,
    "first_seen": pl.Datetime("us"),
    "region": pl.Utf8,
    "device": pl.Utf8,
    "segment": pl.Utf8,
}


@dataclass
class RankingSnapshot:
    """Every table the homepage ranking reads, as of the shop clock."""

    shop_clock: datetime
    run_id: str | None  # None: the popularity fallback
    run_path: Path | None
    items: pl.DataFrame
    promotions: pl.DataFrame
    users: pl.DataFrame
    history: pl.DataFrame
    popularity: pl.DataFrame
    trending: pl.DataFrame


def _history(steps, vocab) -> pl.DataFrame:
    """One row per step (a run of a shopper's events on one item, at its strongest type), in time order."""
    lengths = np.array([len(s) for s in steps.items], dtype=np.int64)
    cat = lambda arrays, dtype: np.concatenate(arrays).astype(dtype) if len(arrays) else np.zeros(0, dtype)  # noqa: E731
    items, codes, ts = cat(steps.items, np.int64), cat(steps.event_types, np.int64), cat(steps.ts, np.float64)
    names = np.array([EVENT_NAMES.get(c, "view") for c in range(max(EVENT_NAMES) + 1)], dtype=object)
    return pl.DataFrame(
        {
            "user_id": np.repeat(np.array(steps.user_ids, dtype=object), lengths).tolist(),
            "step": np.concatenate([np.arange(n) for n in lengths])
            if len(lengths)
            else np.zeros(0, np.int64),
            "ts": pl.Series(np.round(ts * 1e6).astype(np.int64)).cast(pl.Datetime("us")),
            "item_id": vocab.decode(items),
            "event_type": names[codes].tolist(),
        },
        schema={
            "user_id": pl.Utf8,
            "step": pl.Int64,
            "ts": pl.Datetime("us"),
            "item_id": pl.Utf8,
            "event_type": pl.Utf8,
        },
    )


def _items(ctx) -> pl.DataFrame:
    """The item attributes in the model's dense order, with the side codes that score items the run
    never saw (a reader rebuilds the model's catalog from these: see docs/ARCHITECTURE.md)."""
    side = ctx.active.catalog.side
    return ctx.attrs.with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("dense_id"),
        pl.Series("side_category", side.category[1:].numpy()),
        pl.Series("side_brand", side.brand[1:].numpy()),
        pl.Series("side_price_bucket", side.price_bucket[1:].numpy()),
    )


def ranking_snapshot(forgotten: set[str], db_path=None) -> RankingSnapshot:
    """The draft's ranking inputs, fresh from the store; shoppers whose pseudonym is in ``forgotten`` are
    left out even when a process's snapshot or a later ingest still holds them."""
    from core.ranking.shop import shop_context

    ctx = shop_context(db_path, max_age_s=0.0)
    rows = list(ctx.users.values())
    users = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame(schema=USER_SCHEMA)
    history = _history(ctx.steps, ctx.active.catalog.vocab)
    if forgotten:  # one keyed hash per shopper, not per row
        known = set(ctx.steps.user_ids) | set(ctx.users)
        gone = [u for u in known if pseudonym(u) in forgotten]
        users = users.filter(~pl.col("user_id").is_in(gone))
        history = history.filter(~pl.col("user_id").is_in(gone))
    with store.connect(db_path) as con:
        run = con.execute("SELECT path FROM model_runs WHERE run_id = ?", [ctx.active.run_id]).fetchall()
        promotions = con.sql("SELECT * FROM promotions ORDER BY promotion_id").pl()
        trending = con.sql(
            "SELECT item_id, count(*) AS events FROM events WHERE ts >= ? GROUP BY item_id ORDER BY item_id",
            params=[ctx.now - timedelta(days=7)],
        ).pl()
    popularity = ctx.popularity.sort("segment", "item_id")
    return RankingSnapshot(
        shop_clock=ctx.now,
        run_id=ctx.active.run_id,
        run_path=Path(run[0][0]) if run else None,
        items=_items(ctx),
        promotions=promotions,
        users=users.sort("user_id"),
        history=history,
        popularity=popularity,
        trending=trending,
    )
