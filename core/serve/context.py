"""A release artifact → the ranking snapshot, without the database.

The artifact's Parquet files become the same ``ShopFrames`` that ``core.ranking.shop.read_shop`` reads from
the store, its ``model/`` folder the same ``ActiveModel`` that ``core.model_runs.load_active_model`` loads,
and ``core.ranking.shop.build_context`` turns both into the ``ShopContext`` every homepage is ranked from.
So the storefront ranks with the preview's code, on the release's data, and never opens DuckDB.

``load_release(entry, artifact, served=None) -> ServedRelease``: one release, ready to serve (seconds of work:
read the tables, load the checkpoint, build the context). When ``served`` has the same snapshot (everything
but the rule set: the common publish, a merchandiser's rule change or its rollback), its context is shared and
only the rules are read. ``release_frames`` and ``release_model`` are its steps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import torch

from core.config import settings
from core.data.sequences import N_PRICE_BUCKETS, Catalog, Vocab, steps_from_frame
from core.errors import ArtifactError
from core.model_runs import ActiveModel
from core.ranking.rules import RuleSet
from core.ranking.shop import ShopContext, ShopFrames, build_context
from core.release.artifact import Artifact, LiveEntry
from core.training import run_label
from models.base import EVENT_TYPES, ItemSide, SequenceData
from models.baselines import MostPop
from models.infer import pick_device
from models.registry import load_model

# the catalog's own columns (core.data.sequences.load_catalog); items.parquet adds promoted, dense_id, side_*
CATALOG_COLUMNS = (
    "item_id",
    "title",
    "category",
    "brand",
    "seller_id",
    "seller_tier",
    "price",
    "created_at",
    "in_stock",
)
PROMOTION_COLUMNS = ("promotion_id", "item_id", "category", "discount", "starts_at", "ends_at")


@dataclass
class ServedRelease:
    """One live release as the storefront serves it: its timeline entry, artifact, rule set and snapshot."""

    entry: LiveEntry
    artifact: Artifact
    rule_set: RuleSet
    ctx: ShopContext
    load_seconds: float
    loaded_at: float = field(default_factory=time.time)

    @property
    def release_id(self) -> int:
        return self.entry.release_id


def steps_frame(history: pl.DataFrame) -> pl.DataFrame:
    """history.parquet (one row per step) → the frame ``core.data.sequences.read_steps`` makes: user_id,
    items, evs (event codes), ts (epoch seconds), each list in time order."""
    unknown = set(history["event_type"].unique().to_list()) - set(EVENT_TYPES)
    if unknown:
        raise ArtifactError(f"history.parquet: unknown event types {sorted(unknown)}")
    return (
        history.sort("user_id", "step")
        .group_by("user_id", maintain_order=True)
        .agg(
            pl.col("item_id").alias("items"),
            pl.col("event_type").replace_strict(EVENT_TYPES, return_dtype=pl.Int64).alias("evs"),
            (pl.col("ts").dt.epoch("us").cast(pl.Float64) / 1e6).alias("ts"),
        )
    )


def release_frames(artifact: Artifact) -> ShopFrames:
    """The artifact's tables as ``ShopFrames`` (what ``read_shop`` gives for the store)."""
    promotions = artifact.table("promotions")
    return ShopFrames(
        now=artifact.shop_clock,
        users=artifact.table("users"),
        steps=steps_frame(artifact.table("history")),
        promotions=promotions.select([c for c in PROMOTION_COLUMNS if c in promotions.columns]),
        popularity=artifact.table("popularity"),
        trending=artifact.table("trending"),
        signature=("release", artifact.content_hash),
    )


def release_catalog(items: pl.DataFrame, codes: dict) -> Catalog:
    """The model's catalog from items.parquet: dense order, side codes as published (``codes``: the run's
    category and brand lists, for their sizes)."""
    pad = lambda column: torch.from_numpy(np.concatenate([[0], items[column].to_numpy()]).astype(np.int64))  # noqa: E731
    categories = codes.get("categories") or [""]
    brands = codes.get("brands") or [""]
    side = ItemSide(
        category=pad("side_category"),
        brand=pad("side_brand"),
        price_bucket=pad("side_price_bucket"),
        n_categories=max(len(categories), int(items["side_category"].max() or 0) + 1),
        n_brands=max(len(brands), int(items["side_brand"].max() or 0) + 1),
        n_price_buckets=N_PRICE_BUCKETS,
    )
    frame = items.sort("dense_id").select(CATALOG_COLUMNS)
    return Catalog(Vocab(frame["item_id"].to_list()), frame, side, categories, brands)


def release_model(artifact: Artifact, items: pl.DataFrame, frames: ShopFrames) -> ActiveModel:
    """The release's model over its catalog: the copied run, extended with the items published after it
    was trained (as ``core.model_runs`` does), or the popularity fallback fitted on the release's history."""
    torch.set_num_threads(settings().infer_threads)
    model_dir = artifact.model_dir()
    if model_dir is None:
        catalog = release_catalog(items, {})
        steps = steps_from_frame(frames.steps, catalog)
        model = MostPop().fit(SequenceData(steps.items, n_items=catalog.n_items))
        return ActiveModel(model, catalog, None, "popularity baseline (no model trained yet)")
    try:
        codes = json.loads((model_dir / "catalog.json").read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{model_dir}: no readable catalog.json ({exc})") from None
    catalog = release_catalog(items, codes)
    trained = codes["item_ids"]
    if catalog.vocab.item_ids[: len(trained)] != trained:
        raise ArtifactError(f"{artifact.path}: items.parquet is not in the model's dense order")
    model = load_model(model_dir, device=pick_device(settings().device))
    if catalog.n_items > len(trained):
        model.add_items(catalog.n_items - len(trained), catalog.side)
    active = ActiveModel(
        model, catalog, artifact.run_id, run_label(model, artifact.model_kind, artifact.run_id)
    )
    active.catalog_size = catalog.n_items
    return active


def load_release(entry: LiveEntry, artifact: Artifact, served: ServedRelease | None = None) -> ServedRelease:
    """Everything one release needs to serve, built from its artifact alone (see the module docstring)."""
    t0 = time.perf_counter()
    if served is not None and served.artifact.snapshot_hash == artifact.snapshot_hash:
        ctx = served.ctx  # read-only while served: requests on either release rank from the same snapshot
    else:
        frames = release_frames(artifact)
        ctx = build_context(frames, release_model(artifact, artifact.table("items"), frames))
    rule_set = RuleSet.from_json(artifact.rules())
    return ServedRelease(entry, artifact, rule_set, ctx, time.perf_counter() - t0)
