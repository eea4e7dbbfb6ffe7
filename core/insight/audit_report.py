"""The audit report: every metric for each list compared (model, draft, live), and the flags in plain words.

``build_report(inputs)`` runs the metrics of ``core.insight.audit`` and ``core.insight.audit_quality`` on
``AuditInputs`` (plain frames); ``flags`` turns the results into sentences with the threshold rule of
``Thresholds`` (documented in docs/METRICS.md). Exports (CSV, HTML) are in ``core.insight.audit_export``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from core.errors import InputError
from core.insight import audit as m
from core.insight.audit import USER_DIMENSIONS
from core.insight.audit_quality import (
    N_BOOT,
    QUALITY_K,
    QualityByGroup,
    calibration_kl,
    quality_by_group,
    user_groups,
)

FLAGGED_DIMENSIONS = ("seller_tier", "item_age", "top_category")  # brands and sellers: via the Gini
LIST_LABELS = {"model": "unconstrained model", "draft": "draft rule set", "live": "live release"}


@dataclass
class AuditInputs:
    """Everything the metrics need, as plain frames (see ``core.insight.audit`` for the schemas)."""

    homepages: dict[str, pl.DataFrame]  # list name → user_id, rank, item_id
    # item_id, seller_id, seller_tier, brand, category, created_at, in_stock, interactions
    items: pl.DataFrame
    users: pl.DataFrame  # user_id, first_seen, region, device, segment
    history: pl.DataFrame  # user_id, item_id: the population's past events (held-out steps left out)
    held_out: pl.DataFrame | None  # user_id, item_id: each user's next step; None without hold-out
    now: datetime
    population: str  # e.g. "sample of 2,000 of 19,999 shoppers (seed 0)"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for the benchmark
    cpu_timings: dict[str, float] = field(default_factory=dict)  # CPU seconds of this process per stage


@dataclass(frozen=True)
class Thresholds:
    """When a number becomes a flag (the reasons are in docs/METRICS.md)."""

    exposure_ratio: float = 0.8  # a group gets < 80 % of its target share: the four-fifths rule
    min_gap: float = 0.02  # ...and is at least 2 points short, so tiny groups do not flood the list
    gini: float = 0.76  # more concentrated than the 80/20 rule (a Pareto distribution with 80/20 has 0.76)
    tail_ratio: float = 0.8  # long-tail slots < 80 % of the long tail's share of interactions
    lift: float = 0.5  # a user group is shown items ≥ 50 % more popular than its own history
    quality_ratio: float = 0.8  # a user group's HR@10 < 80 % of the best group's, with intervals apart
    calibration: float = 0.69  # mean KL ≥ log 2: as far off as half the slots outside a one-category taste


@dataclass
class ListAudit:
    """Every metric for one list (model, draft or live) over the population."""

    name: str
    grouping: str  # the user dimension of ``lift`` and ``quality``
    exposure: dict[str, pl.DataFrame]  # item dimension → group, exposure_share, target_share, ratio, gap
    disparity: dict[str, dict[str, float]]  # item dimension → min_max_ratio, max_abs_diff
    gini_items: float
    gini_sellers: float
    lorenz_items: pl.DataFrame  # population_share, exposure_share
    coverage: float
    k: int
    arp: float
    aplt: float
    tail_interaction_share: float  # the long tail's share of all interactions (the APLT target)
    tail_catalog_share: float
    lift: pl.DataFrame  # group, users, history_popularity, homepage_popularity, lift
    quality: QualityByGroup | None
    calibration: float
    flags: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LIST_LABELS.get(self.name, self.name)


@dataclass
class AuditReport:
    lists: dict[str, ListAudit]
    grouping: str  # the user dimension of quality and popularity lift
    target: str  # catalog | relevance
    population: str
    users: int
    now: datetime
    thresholds: Thresholds
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def flags(self) -> list[tuple[str, str]]:
        """(list label, sentence) for every flag of every list."""
        return [(a.label, f) for a in self.lists.values() for f in a.flags]


def audit_list(
    name: str,
    homepages: pl.DataFrame,
    items: pl.DataFrame,
    users: pl.DataFrame,
    history: pl.DataFrame,
    held_out: pl.DataFrame | None,
    grouping: str,
    target: str = "catalog",
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> ListAudit:
    """Every metric for one list; ``items`` carry the dimensions of ``m.item_groups``, ``users`` those of
    ``user_groups``."""
    m.require(homepages, f"{name} homepages", m.HOMEPAGE_COLUMNS)
    exposure = {
        d: m.exposure_share(homepages, items, d, target) for d in m.ITEM_DIMENSIONS if d != "seller_id"
    }
    per_item = m.exposure_by(homepages, items, "item_id")
    tail = m.long_tail(items)  # the same split APLT uses
    total = max(1, tail["interactions"].sum())
    return ListAudit(
        name=name,
        grouping=grouping,
        exposure=exposure,
        disparity={d: m.exposure_disparity(s) for d, s in exposure.items()},
        gini_items=m.gini(per_item),
        gini_sellers=m.exposure_gini(homepages, items, "seller_id"),
        lorenz_items=m.lorenz_curve(per_item),
        coverage=m.catalog_coverage(homepages, items),
        k=int(homepages["rank"].max()),
        arp=m.average_recommendation_popularity(homepages, items),
        aplt=m.average_long_tail_share(homepages, items),
        tail_interaction_share=float(tail.filter("long_tail")["interactions"].sum() / total),
        tail_catalog_share=float(tail["long_tail"].mean()),
        lift=m.popularity_lift(homepages, history, items, users, grouping),
        quality=(
            quality_by_group(homepages, held_out, users, grouping, QUALITY_K, n_boot, seed)
            if held_out is not None and not held_out.is_empty()
            else None
        ),
        calibration=calibration_kl(homepages, history, items),
    )


def build_report(
    inputs: AuditInputs,
    grouping: str = "activity",
    target: str = "catalog",
    thresholds: Thresholds | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> AuditReport:
    """Audit every list of ``inputs`` the same way, and flag what crosses ``thresholds``."""
    if grouping not in USER_DIMENSIONS:
        raise InputError(
            f"unknown user grouping {grouping!r}", fix=f"use one of {', '.join(USER_DIMENSIONS)}"
        )
    started = time.perf_counter()
    thresholds = thresholds or Thresholds()
    items = m.item_groups(inputs.items, inputs.now)
    users = user_groups(inputs.users, inputs.history, inputs.now)
    lists = {}
    for name, homepages in inputs.homepages.items():
        audit = audit_list(
            name, homepages, items, users, inputs.history, inputs.held_out, grouping, target, n_boot, seed
        )
        audit.flags = flags(audit, target, thresholds)
        lists[name] = audit
    timings = {**inputs.timings, "metrics": time.perf_counter() - started}
    return AuditReport(
        lists, grouping, target, inputs.population, users.height, inputs.now, thresholds, timings
    )


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if x >= 0.01 or x == 0 else f"{100 * x:.1f}%"


def group_phrase(dimension: str, group: str) -> str:
    """A group as a product manager would say it: "small sellers", "new items", "light shoppers"."""
    words = {
        "seller_tier": f"{group} sellers",
        "item_age": f"{group} items",
        "top_category": f"items in category '{group}'",
        "brand": f"brand '{group}'",
        "seller_id": f"seller '{group}'",
        "activity": f"{group} shoppers",
        "tenure": f"{group} shoppers",
        "region": f"shoppers in region '{group}'",
        "device": f"{group} shoppers",
    }
    return words.get(dimension, f"{dimension} '{group}'")


def flags(audit: ListAudit, target: str, t: Thresholds) -> list[str]:
    """The flags of one list, worst first within each kind (the rule for each is in ``Thresholds``)."""
    against = "the catalog" if target == "catalog" else "the demand (interactions)"
    out = []
    for dim in FLAGGED_DIMENSIONS:
        short = (
            audit.exposure[dim]
            .filter((pl.col("ratio") < t.exposure_ratio) & (pl.col("gap") <= -t.min_gap))
            .sort("ratio")
        )
        for g, e, tgt in short.select("group", "exposure_share", "target_share").iter_rows():
            out.append(f"{group_phrase(dim, g)} get {_pct(e)} of exposure against {_pct(tgt)} of {against}")
    for what, g in (("items", audit.gini_items), ("sellers", audit.gini_sellers)):
        if g >= t.gini:
            out.append(
                f"exposure across {what} is concentrated: Gini {g:.2f} (above {t.gini:.2f}, the 80/20 rule)"
            )
    if audit.aplt < t.tail_ratio * audit.tail_interaction_share:
        out.append(
            f"long-tail items fill {_pct(audit.aplt)} of homepage slots against {_pct(audit.tail_interaction_share)} "
            f"of interactions ({_pct(audit.tail_catalog_share)} of the catalog)"
        )
    for g, lift in (
        audit.lift.filter(pl.col("lift") >= t.lift)
        .sort("lift", descending=True)
        .select("group", "lift")
        .iter_rows()
    ):
        out.append(
            f"{group_phrase(audit.grouping, g)} are shown items {_pct(lift)} more popular than their own history"
        )
    out.extend(_quality_flags(audit.quality, t))
    if audit.calibration >= t.calibration:
        out.append(
            f"homepages drift from shoppers' category mix: mean KL {audit.calibration:.2f} (≥ {t.calibration:.2f})"
        )
    return out


def _quality_flags(q: QualityByGroup | None, t: Thresholds) -> list[str]:
    if q is None or q.table.height < 2:
        return []
    best = q.table.sort("hr", descending=True).row(0, named=True)
    out = []
    for row in q.table.sort("hr").iter_rows(named=True):
        apart = row["hr_hi"] is None or best["hr_lo"] is None or row["hr_hi"] < best["hr_lo"]
        if row["group"] != best["group"] and row["hr"] < t.quality_ratio * best["hr"] and apart:
            out.append(
                f"{group_phrase(q.by, row['group'])}: HR@{q.k} {row['hr']:.2f} against {best['hr']:.2f} "
                f"for {group_phrase(q.by, best['group'])}"
            )
    return out
