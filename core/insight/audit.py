"""Bias audit metrics: who is shown (exposure), how popular it is, over plain frames.

Every metric is a pure function over polars frames; none reads the store or the ranking code, so the
audit survives any change to how homepages are built (``core.insight.audit_population`` makes the frames).
User-side quality (fairlearn) and calibration are in ``core.insight.audit_quality``. The formulas, their
sources and the conventions chosen are in docs/METRICS.md.

Input frames
------------
homepages  user_id: str, rank: int (1-based slot), item_id: str   — one row per slot shown
items      item_id: str, seller_id, seller_tier, brand, category (path ``a.b.c``): str, created_at: datetime,
           interactions: int (events on the item), in_stock: bool (optional: out-of-stock items are left out
           of the catalog targets) — one row per catalog item
history    user_id: str, item_id: str — the users' past interactions (for popularity lift and calibration)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import polars as pl

from core.errors import InputError

HOMEPAGE_COLUMNS = ("user_id", "rank", "item_id")
ITEM_COLUMNS = ("item_id", "seller_id", "seller_tier", "brand", "category", "created_at", "interactions")
ITEM_DIMENSIONS = ("seller_tier", "top_category", "item_age", "brand", "seller_id")
USER_DIMENSIONS = ("activity", "tenure", "region", "device")
LISTS = ("model", "draft", "live")  # unconstrained model-only lists, the draft rule set, the live release
HEAD_SHARE = 0.8  # the short head: the most popular items that together make 80 % of interactions
NEW_ITEM_DAYS = 30


def require(frame: pl.DataFrame, name: str, columns: tuple[str, ...], allow_empty: bool = False) -> None:
    """Raise an InputError naming the frame and the missing columns (or that it is empty)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"the {name} frame has no column(s) {', '.join(missing)}",
            fix=f"give {name} the columns {', '.join(columns)}",
        )
    if not allow_empty and frame.is_empty():
        raise InputError(
            f"the {name} frame is empty: there is nothing to audit", fix=f"pass at least one {name} row"
        )


def catalog(items: pl.DataFrame) -> pl.DataFrame:
    """The items that can be shown: in stock when the frame says so."""
    require(items, "items", ("item_id",))
    if "in_stock" in items.columns:
        return items.filter(pl.col("in_stock").fill_null(True))
    return items


def item_groups(items: pl.DataFrame, now: datetime, new_days: int = NEW_ITEM_DAYS) -> pl.DataFrame:
    """Add the audit's item dimensions: ``top_category`` (first part of the path) and ``item_age``
    ("new" when created within ``new_days`` of ``now``, else "established"); nulls become "unknown"."""
    require(items, "items", ITEM_COLUMNS)
    created = pl.col("created_at")
    return items.with_columns(
        pl.col("category").fill_null("unknown").str.split(".").list.first().alias("top_category"),
        pl.when(created.is_null())
        .then(pl.lit("unknown"))
        .when(created >= now - timedelta(days=new_days))
        .then(pl.lit("new"))
        .otherwise(pl.lit("established"))
        .alias("item_age"),
        *(pl.col(c).cast(pl.Utf8).fill_null("unknown") for c in ("seller_id", "seller_tier", "brand")),
        pl.col("interactions").fill_null(0),
    )


def position_weight(rank) -> np.ndarray:
    """Position weight of a 1-based slot (Singh & Joachims 2018).

    Formula:
        w(r) = 1 / log2(1 + r)          (w(1) = 1, w(2) = 0.63, w(3) = 0.5, w(24) = 0.22)

    Args:
        rank: 1-based slots (array-like of ints ≥ 1).

    Returns:
        np.ndarray: the weights, in (0, 1].
    """
    r = np.asarray(rank, dtype=np.float64)
    if r.size and r.min() < 1:
        raise InputError("a homepage rank is below 1", fix="ranks are 1-based slot numbers")
    return 1.0 / np.log2(1.0 + r)


def _weighted(homepages: pl.DataFrame) -> pl.DataFrame:
    require(homepages, "homepages", HOMEPAGE_COLUMNS)
    return homepages.with_columns(pl.Series("weight", position_weight(homepages["rank"].to_numpy())))


def item_exposure(homepages: pl.DataFrame, items: pl.DataFrame | None = None) -> pl.DataFrame:
    """Exposure of every item over a population's homepages (Singh & Joachims 2018).

    Formula:
        Exp(i) = Σ_u Σ_r [L_u(r) = i] · w(r)

    Args:
        homepages: user_id, rank, item_id.
        items: when given, every catalog item gets a row (0 for items nobody was shown).

    Returns:
        pl.DataFrame: item_id, exposure (≥ 0), largest first.
    """
    exp = _weighted(homepages).group_by("item_id").agg(pl.col("weight").sum().alias("exposure"))
    if items is not None:
        exp = catalog(items).select("item_id").join(exp, on="item_id", how="left").fill_null(0.0)
    return exp.sort(["exposure", "item_id"], descending=[True, False])


def exposure_share(
    homepages: pl.DataFrame,
    items: pl.DataFrame,
    by: str,
    target: Literal["catalog", "relevance"] = "catalog",
) -> pl.DataFrame:
    """Each group's share of the exposure against its target share.

    Formula:
        E(g) = Σ_{i∈g} Exp(i) / Σ_i Exp(i)
        T(g) = |{i ∈ catalog : i ∈ g}| / |catalog|                   (target = "catalog")
        T(g) = Σ_{i∈g} interactions(i) / Σ_i interactions(i)         (target = "relevance": demand share)
        ratio(g) = E(g) / T(g);  gap(g) = E(g) − T(g)

    Args:
        homepages: user_id, rank, item_id.
        items: the items frame with the dimension ``by`` (see ``item_groups``) and ``interactions``.
        by: the item dimension, e.g. "seller_tier", "top_category", "item_age", "brand".
        target: what a fair share is measured against.

    Returns:
        pl.DataFrame: group, exposure_share, target_share, ratio (None where the target is 0), gap;
        largest target first. Shares sum to 1 over the groups.
    """
    if target not in ("catalog", "relevance"):
        raise InputError(f"unknown target {target!r}", fix="use target='catalog' or target='relevance'")
    require(items, "items", ("item_id", by, "interactions"))
    shown = catalog(items).select(
        "item_id", pl.col(by).cast(pl.Utf8).fill_null("unknown").alias("group"), "interactions"
    )
    exp = item_exposure(homepages).join(shown, on="item_id", how="inner")
    total = exp["exposure"].sum()
    if total <= 0:
        raise InputError("no shown item is in the catalog", fix="audit homepages built from this catalog")
    weight = pl.len() if target == "catalog" else pl.col("interactions").fill_null(0).sum()
    tgt = shown.group_by("group").agg(weight.cast(pl.Float64).alias("t"))
    t_total = tgt["t"].sum()
    if t_total <= 0:
        raise InputError(
            "the catalog has no interactions to take a relevance share from", fix="use target='catalog'"
        )
    e = exp.group_by("group").agg((pl.col("exposure").sum() / total).alias("exposure_share"))
    return (
        tgt.join(e, on="group", how="full", coalesce=True)
        .with_columns(
            pl.col("exposure_share").fill_null(0.0),
            (pl.col("t").fill_null(0.0) / t_total).alias("target_share"),
        )
        .with_columns(
            pl.when(pl.col("target_share") > 0)
            .then(pl.col("exposure_share") / pl.col("target_share"))
            .alias("ratio"),
            (pl.col("exposure_share") - pl.col("target_share")).alias("gap"),
        )
        .select("group", "exposure_share", "target_share", "ratio", "gap")
        .sort(["target_share", "group"], descending=[True, False])
    )


def exposure_disparity(shares: pl.DataFrame) -> dict[str, float]:
    """Aggregate the groups' shares: how far the least- and most-exposed groups are from their targets.

    Formula:
        min/max ratio = min_g ratio(g) / max_g ratio(g)      (1 = every group gets exposure in proportion
                                                              to its target; 0 = some group gets none)
        max |difference| = max_g |E(g) − T(g)|               (0 = every share on target; at most 1)

    Args:
        shares: the frame ``exposure_share`` returns (groups with a 0 target are left out of the ratio).

    Returns:
        dict: min_max_ratio in [0, 1], max_abs_diff in [0, 1].
    """
    require(shares, "exposure shares", ("ratio", "gap"))
    ratios = shares["ratio"].drop_nulls()
    top = ratios.max() if len(ratios) else None
    return {
        "min_max_ratio": float(ratios.min() / top) if top else 0.0,
        "max_abs_diff": float(shares["gap"].abs().max()),
    }


def gini(values) -> float:
    """Gini index of a non-negative distribution, n/(n−1)-normalised so that its maximum is 1.

    Formula (x sorted ascending, i = 1..n):
        G = n/(n−1) · Σ_i (2i − n − 1) x_i / (n Σ_i x_i)
          = 1 − 2·(area under the Lorenz curve), rescaled by n/(n−1)

    0 = every unit gets the same; 1 = one unit gets everything (the plain Lorenz form would give (n−1)/n).
    Defined as 0 for a single unit. Units with nothing (never shown) count as zeros.

    Args:
        values: exposure per unit (items, sellers), array-like of numbers ≥ 0.

    Returns:
        float: the Gini index in [0, 1].
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        raise InputError("no values to take a Gini index of", fix="pass the exposure of at least one item")
    if x[0] < 0:
        raise InputError("a negative exposure", fix="exposure is a sum of position weights, never below 0")
    n, total = x.size, x.sum()
    if n == 1 or total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * total) * n / (n - 1))


def lorenz_curve(values) -> pl.DataFrame:
    """The Lorenz curve of a distribution: the poorest p of the units get L(p) of the total.

    Formula (x sorted ascending):  p_j = j / n,  L(p_j) = Σ_{i≤j} x_i / Σ_i x_i,  with (0, 0) first.

    Returns:
        pl.DataFrame: population_share, exposure_share, both from 0 to 1.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    total = x.sum()
    cum = np.concatenate([[0.0], np.cumsum(x) / total if total > 0 else np.linspace(0, 1, x.size)])
    return pl.DataFrame({"population_share": np.linspace(0.0, 1.0, x.size + 1), "exposure_share": cum})


def exposure_by(homepages: pl.DataFrame, items: pl.DataFrame, by: str = "item_id") -> np.ndarray:
    """Exposure summed per unit of ``by`` (item_id, seller_id, …) over the whole catalog, zeros included."""
    require(items, "items", ("item_id", by))
    exp = item_exposure(homepages, items).join(
        catalog(items).select("item_id", pl.col(by).cast(pl.Utf8).fill_null("unknown").alias("unit")),
        on="item_id",
    )
    return exp.group_by("unit").agg(pl.col("exposure").sum())["exposure"].to_numpy()


def exposure_gini(homepages: pl.DataFrame, items: pl.DataFrame, by: str = "item_id") -> float:
    """Gini index of the exposure over the catalog's items (``by="item_id"``) or sellers (``by="seller_id"``).

    Formula:  G(Exp(u) for every unit u of the catalog), see ``gini``.

    Returns:
        float: in [0, 1]; 0 = every item (seller) equally exposed, 1 = all exposure on one.
    """
    return gini(exposure_by(homepages, items, by))


def catalog_coverage(homepages: pl.DataFrame, items: pl.DataFrame, k: int | None = None) -> float:
    """Catalog coverage@K: the share of the catalog that appears in someone's top K.

    Formula:  |∪_u {L_u(r) : r ≤ K} ∩ catalog| / |catalog|

    Args:
        k: the depth (None: the whole homepage).

    Returns:
        float: in [0, 1].
    """
    require(homepages, "homepages", HOMEPAGE_COLUMNS)
    cat = catalog(items)
    if cat.is_empty():
        raise InputError("the catalog has no item in stock", fix="audit a catalog with items in stock")
    top = homepages if k is None else homepages.filter(pl.col("rank") <= k)
    shown = top.select("item_id").unique().join(cat.select("item_id"), on="item_id", how="semi")
    return shown.height / cat.height


def long_tail(items: pl.DataFrame, head_share: float = HEAD_SHARE) -> pl.DataFrame:
    """Split the catalog into the short head and the long tail by interactions (Abdollahpouri et al. 2019).

    Formula (items sorted by interactions, most first, ties by item id):
        head = the shortest prefix whose interactions reach ``head_share`` (80 %) of all interactions
        tail Γ = every other item (items nobody interacted with included)

    Returns:
        pl.DataFrame: item_id, interactions, long_tail (bool).
    """
    require(items, "items", ("item_id", "interactions"))
    ranked = items.select("item_id", pl.col("interactions").fill_null(0)).sort(
        ["interactions", "item_id"], descending=[True, False]
    )
    total = ranked["interactions"].sum()
    before = ranked["interactions"].cum_sum() - ranked["interactions"]  # interactions of the items above
    tail = (before >= head_share * total) if total > 0 else pl.Series([True] * ranked.height)
    return ranked.with_columns(tail.alias("long_tail"))


def _per_user_mean(homepages: pl.DataFrame, items: pl.DataFrame, value: pl.Expr) -> float:
    require(homepages, "homepages", HOMEPAGE_COLUMNS)
    per_user = (
        homepages.join(items, on="item_id", how="left").group_by("user_id").agg(value.mean().alias("v"))
    )
    return float(per_user["v"].mean())


def average_recommendation_popularity(homepages: pl.DataFrame, items: pl.DataFrame) -> float:
    """ARP: how popular the recommended items are on average (Abdollahpouri et al. 2019).

    Formula:  ARP = 1/|U| Σ_u Σ_{i∈L_u} φ(i) / |L_u|,   φ(i) = interactions with item i

    Returns:
        float: ≥ 0, in interactions per item (compare with the catalog's mean popularity).
    """
    require(items, "items", ("item_id", "interactions"))
    return _per_user_mean(
        homepages, items.select("item_id", "interactions"), pl.col("interactions").fill_null(0)
    )


def average_long_tail_share(
    homepages: pl.DataFrame, items: pl.DataFrame, head_share: float = HEAD_SHARE
) -> float:
    """APLT: the average share of long-tail items in a homepage (Abdollahpouri et al. 2019).

    Formula:  APLT = 1/|U| Σ_u |{i ∈ L_u : i ∈ Γ}| / |L_u|,   Γ = the long tail (see ``long_tail``)

    Returns:
        float: in [0, 1].
    """
    tail = long_tail(items, head_share).select("item_id", "long_tail")
    return _per_user_mean(homepages, tail, pl.col("long_tail").fill_null(True).cast(pl.Float64))


def popularity_lift(
    homepages: pl.DataFrame, history: pl.DataFrame, items: pl.DataFrame, users: pl.DataFrame, by: str
) -> pl.DataFrame:
    """Popularity lift per user group against the group's own history (Abdollahpouri et al. 2019, 2021).

    Formula (φ(i) = interactions with i; p_u = the distinct items in u's history, L_u = u's homepage):
        GAP_p(g) = 1/|g| Σ_{u∈g} Σ_{i∈p_u} φ(i) / |p_u|
        GAP_r(g) = 1/|g| Σ_{u∈g} Σ_{i∈L_u} φ(i) / |L_u|
        ΔGAP(g)  = (GAP_r(g) − GAP_p(g)) / GAP_p(g)

    Only users with both a history and a homepage count.

    Returns:
        pl.DataFrame: group, users, history_popularity, homepage_popularity, lift
        (0 = recommendations as popular as what the group interacts with; 0.5 = 50 % more popular).
    """
    require(history, "history", ("user_id", "item_id"), allow_empty=True)
    require(users, "users", ("user_id", by))
    pop = items.select("item_id", pl.col("interactions").fill_null(0).cast(pl.Float64))

    def mean_per_user(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return (
            frame.join(pop, on="item_id", how="left")
            .group_by("user_id")
            .agg(pl.col("interactions").fill_null(0).mean().alias(name))
        )

    profile = mean_per_user(history.select("user_id", "item_id").unique(), "history_popularity")
    recs = mean_per_user(_weighted(homepages).select("user_id", "item_id"), "homepage_popularity")
    groups = users.select("user_id", pl.col(by).cast(pl.Utf8).fill_null("unknown").alias("group"))
    both = profile.join(recs, on="user_id").join(groups, on="user_id")
    if both.is_empty():
        raise InputError("no user has both a history and a homepage", fix="audit users with some history")
    out = both.group_by("group").agg(
        pl.len().alias("users"), pl.col("history_popularity").mean(), pl.col("homepage_popularity").mean()
    )
    lift = pl.when(pl.col("history_popularity") > 0).then(
        pl.col("homepage_popularity") / pl.col("history_popularity") - 1.0
    )
    return out.with_columns(lift.alias("lift")).sort("group")
