"""Bias audit, the user side: offline quality by user group (fairlearn's MetricFrame) and calibration.

Input frames (see ``core.insight.audit`` for homepages, items and history)
-----------------------------------------------------------------------
held_out   user_id: str, item_id: str — each user's next event, never shown to the model or the rules
users      user_id: str, first_seen: datetime, region, device: str (optional columns become "unknown")

``user_groups`` derives the grouping columns (activity, tenure, region, device); the metrics take any
categorical column of ``users`` as the grouping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from fairlearn.metrics import MetricFrame

from core.errors import InputError
from core.insight.audit import HOMEPAGE_COLUMNS, require

USER_DIMENSIONS = ("activity", "tenure", "region", "device")
QUALITY_K = 10
NEW_USER_DAYS = 30
CALIBRATION_ALPHA = (
    0.01  # Steck 2018: q̃ = (1 − α) q + α p keeps KL finite; he suggests a small α such as 0.01
)
CI = (0.025, 0.975)  # a 95 % percentile bootstrap interval


def user_groups(
    users: pl.DataFrame, history: pl.DataFrame, now: datetime, new_days: int = NEW_USER_DAYS
) -> pl.DataFrame:
    """The audit's user dimensions, one row per user of ``users``.

    activity  "light" / "medium" / "heavy": terciles of the number of history events (cut points are the
              33rd and 67th percentiles of this population; a user with no history is "light")
    tenure    "new" when first seen within ``new_days`` of ``now`` (first event when first_seen is empty),
              else "returning"
    region, device  as stored ("unknown" when empty)
    """
    require(users, "users", ("user_id",))
    require(history, "history", ("user_id", "item_id"), allow_empty=True)
    counts = history.group_by("user_id").agg(pl.len().alias("events"))
    frame = users.join(counts, on="user_id", how="left").with_columns(pl.col("events").fill_null(0))
    lo, hi = np.quantile(frame["events"].to_numpy(), [1 / 3, 2 / 3])
    activity = (
        pl.when(pl.col("events") <= lo)
        .then(pl.lit("light"))
        .when(pl.col("events") <= hi)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("heavy"))
    )
    first = pl.col("first_seen") if "first_seen" in frame.columns else pl.lit(None, dtype=pl.Datetime)
    tenure = pl.when(first.is_null()).then(pl.lit("unknown")).when(first >= now - timedelta(days=new_days))
    tenure = tenure.then(pl.lit("new")).otherwise(pl.lit("returning"))
    text = lambda c: (pl.col(c) if c in frame.columns else pl.lit(None)).cast(pl.Utf8).fill_null("unknown")  # noqa: E731
    return frame.select(
        "user_id",
        "events",
        activity.alias("activity"),
        tenure.alias("tenure"),
        text("region").alias("region"),
        text("device").alias("device"),
    )


def held_out_ranks(homepages: pl.DataFrame, held_out: pl.DataFrame) -> pl.DataFrame:
    """Where each user's held-out next item sits in their homepage.

    Formula:  rank_u = r such that L_u(r) = target_u, else 0 (not shown)

    Only users with a homepage count (a user with no homepage rows is an input error of the caller).

    Returns:
        pl.DataFrame: user_id, rank (0 = not shown, else the 1-based slot).
    """
    require(homepages, "homepages", HOMEPAGE_COLUMNS)
    require(held_out, "held-out events", ("user_id", "item_id"))
    targets = held_out.select("user_id", "item_id").unique(subset="user_id", keep="first")
    targets = targets.join(homepages.select("user_id").unique(), on="user_id", how="semi")
    if targets.is_empty():
        raise InputError("no held-out user has a homepage", fix="build homepages for the held-out users")
    hits = (
        homepages.select("user_id", "item_id", "rank")
        .group_by("user_id", "item_id")
        .agg(pl.col("rank").min())
    )
    return (
        targets.join(hits, on=["user_id", "item_id"], how="left")
        .select("user_id", pl.col("rank").fill_null(0).cast(pl.Int64))
        .sort("user_id")
    )


def hit_rate_at_k(y_true, y_pred, k: int = QUALITY_K) -> float:
    """Hit rate@K over users, in fairlearn's metric signature.

    Formula:  HR@K = 1/|U| Σ_u [1 ≤ rank_u ≤ K]

    Args:
        y_true: unused (each user's held-out event happened); fairlearn passes it.
        y_pred: rank_u per user (0 = the held-out item was not shown).

    Returns:
        float: in [0, 1].
    """
    r = np.asarray(y_pred, dtype=np.float64)
    return float(np.mean((r >= 1) & (r <= k))) if r.size else 0.0


def ndcg_at_k(y_true, y_pred, k: int = QUALITY_K) -> float:
    """NDCG@K with one relevant item per user, in fairlearn's metric signature.

    Formula:  NDCG@K = 1/|U| Σ_u [1 ≤ rank_u ≤ K] / log2(1 + rank_u)   (the ideal DCG is 1)

    Returns:
        float: in [0, 1].
    """
    r = np.asarray(y_pred, dtype=np.float64)
    hit = (r >= 1) & (r <= k)
    return float(np.mean(np.where(hit, 1.0 / np.log2(1.0 + np.maximum(r, 1.0)), 0.0))) if r.size else 0.0


@dataclass
class QualityByGroup:
    """Quality per user group, with bootstrap intervals, and the best-minus-worst gap (UGF)."""

    by: str
    table: pl.DataFrame  # group, users, hr, hr_lo, hr_hi, ndcg, ndcg_lo, ndcg_hi
    overall: dict[str, float]  # hr, ndcg over every user
    ugf: dict[str, float]  # hr, ndcg: max_g − min_g (fairlearn's difference between groups)
    k: int
    n_boot: int


def quality_by_group(
    homepages: pl.DataFrame,
    held_out: pl.DataFrame,
    users: pl.DataFrame,
    by: str,
    k: int = QUALITY_K,
    n_boot: int = 100,
    seed: int = 0,
) -> QualityByGroup:
    """HR@K and NDCG@K on held-out next events per user group, with fairlearn's ``MetricFrame``.

    Formula:
        M(g)    = 1/|g| Σ_{u∈g} m(u)                     (m = HR@K or NDCG@K of user u; MetricFrame.by_group)
        UGF     = max_g M(g) − min_g M(g)                (Li et al. 2021; MetricFrame.difference())
        CI(g)   = the 2.5 % and 97.5 % quantiles of M(g) over ``n_boot`` resamples of the users with
                  replacement (MetricFrame's bootstrap, ``n_boot`` / ``ci_quantiles``)

    Args:
        by: a column of ``users`` (see ``user_groups``); a user missing from ``users`` is "unknown".
        n_boot: bootstrap resamples (0: no intervals, the lo/hi columns are null).

    Returns:
        QualityByGroup: the table (groups in name order), overall values and the UGF gap.
    """
    require(users, "users", ("user_id", by))
    ranks = (
        held_out_ranks(homepages, held_out)
        .join(users.select("user_id", pl.col(by).cast(pl.Utf8).alias("group")), on="user_id", how="left")
        .with_columns(pl.col("group").fill_null("unknown"))
    )
    metrics = {"hr": lambda t, p: hit_rate_at_k(t, p, k), "ndcg": lambda t, p: ndcg_at_k(t, p, k)}
    # integer group codes: pandas groups them about twice as fast as strings in every bootstrap resample
    names, codes = np.unique(ranks["group"].to_numpy().astype(str), return_inverse=True)
    boot = dict(n_boot=n_boot, ci_quantiles=list(CI), random_state=seed) if n_boot else {}
    frame = MetricFrame(
        metrics=metrics,
        y_true=np.ones(ranks.height),
        y_pred=ranks["rank"].to_numpy(),
        sensitive_features=codes,
        **boot,
    )
    by_group = frame.by_group
    groups = [str(names[g]) for g in by_group.index]
    counts = dict(ranks.group_by("group").agg(pl.len()).iter_rows())
    table = {"group": groups, "users": [int(counts[g]) for g in groups]}
    lo, hi = frame.by_group_ci if n_boot else (None, None)
    for name in metrics:
        table[name] = by_group[name].to_numpy(dtype=float)
        for end, ci in (("lo", lo), ("hi", hi)):
            table[f"{name}_{end}"] = (
                ci[name].to_numpy(dtype=float) if ci is not None else [None] * len(groups)
            )
    diff = frame.difference(method="between_groups")
    return QualityByGroup(
        by=by,
        table=pl.DataFrame(
            table, schema_overrides={f"{m}_{s}": pl.Float64 for m in metrics for s in ("lo", "hi")}
        ),
        overall={name: float(frame.overall[name]) for name in metrics},
        ugf={name: float(diff[name]) for name in metrics},
        k=k,
        n_boot=n_boot,
    )


def calibration_kl(
    homepages: pl.DataFrame, history: pl.DataFrame, items: pl.DataFrame, alpha: float = CALIBRATION_ALPHA
) -> float:
    """Miscalibration: mean KL between each user's category mix and their homepage's mix (Steck 2018).

    Formula (g = top-level category; p from the history's events, q from the homepage's slots, uniform):
        p(g|u) = share of u's history events in g;   q(g|u) = share of u's homepage slots in g
        q̃(g|u) = (1 − α) q(g|u) + α p(g|u)          (α = 0.01: Steck's smoothing, so KL stays finite)
        C_KL    = 1/|U| Σ_u Σ_g p(g|u) log(p(g|u) / q̃(g|u))      (natural log: nats)

    Only users with both a history and a homepage count.

    Returns:
        float: ≥ 0 (0 = every homepage mirrors its user's mix; at most log(1/α) ≈ 4.6 nats).
    """
    require(homepages, "homepages", HOMEPAGE_COLUMNS)
    require(history, "history", ("user_id", "item_id"))
    if not 0 < alpha < 1:
        raise InputError(f"alpha {alpha} is outside (0, 1)", fix="use a small alpha such as 0.01")
    top = items.select(
        "item_id", pl.col("category").fill_null("unknown").str.split(".").list.first().alias("g")
    )

    def mix(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        tagged = frame.select("user_id", "item_id").join(top, on="item_id", how="left")
        tagged = tagged.with_columns(pl.col("g").fill_null("unknown"))
        return (
            tagged.group_by("user_id", "g")
            .agg(pl.len().alias("n"))
            .with_columns((pl.col("n") / pl.col("n").sum().over("user_id")).alias(name))
            .drop("n")
        )

    shown = homepages.select("user_id").unique()
    p = mix(history.join(shown, on="user_id", how="semi"), "p")
    q = mix(homepages.join(p.select("user_id").unique(), on="user_id", how="semi"), "q")
    if p.is_empty():
        raise InputError("no user has both a history and a homepage", fix="audit users with some history")
    terms = p.join(q, on=["user_id", "g"], how="left").with_columns(pl.col("q").fill_null(0.0))
    terms = terms.with_columns(
        (pl.col("p") * (pl.col("p") / ((1 - alpha) * pl.col("q") + alpha * pl.col("p"))).log()).alias("kl")
    )
    return float(terms.group_by("user_id").agg(pl.col("kl").sum())["kl"].mean())
