"""User-side audit metrics: quality by user group (fairlearn's MetricFrame), UGF, calibration, user groups."""

from datetime import datetime

import numpy as np
import polars as pl
import pytest
from fairlearn.metrics import MetricFrame

from core.errors import InputError
from core.insight import audit_quality as q

W2, W3 = 1 / np.log2(3), 0.5
# held-out item's slot per user (0 = not shown; 12 is beyond K = 10) and the user's group
RANKS = {"a1": 1, "a2": 0, "b1": 3, "b2": 12, "b3": 2, "c1": 0}
GROUP = {"a1": "a", "a2": "a", "b1": "b", "b2": "b", "b3": "b", "c1": "c"}


def homepages_with_targets(ranks: dict[str, int], length: int = 12) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Homepages of ``length`` filler items where each user's target sits at the given slot (0: absent)."""
    rows = []
    for user, rank in ranks.items():
        for slot in range(1, length + 1):
            rows.append((user, slot, "target" if slot == rank else f"filler-{slot}"))
    homepages = pl.DataFrame(rows, schema=["user_id", "rank", "item_id"], orient="row")
    held_out = pl.DataFrame({"user_id": list(ranks), "item_id": ["target"] * len(ranks)})
    return homepages, held_out


@pytest.fixture(scope="module")
def example():
    homepages, held_out = homepages_with_targets(RANKS)
    users = pl.DataFrame({"user_id": list(GROUP), "activity": list(GROUP.values())})
    return homepages, held_out, users


@pytest.fixture(scope="module")
def quality(example):
    return q.quality_by_group(*example, by="activity", n_boot=50, seed=3)


def test_held_out_ranks_find_the_slot_or_zero(example):
    homepages, held_out, _ = example
    ranks = dict(q.held_out_ranks(homepages, held_out).iter_rows())
    assert ranks == RANKS


def test_hit_rate_at_10():
    assert q.hit_rate_at_k(None, [1, 0, 3, 12]) == pytest.approx(0.5)


def test_ndcg_at_10():
    assert q.ndcg_at_k(None, [1, 0, 3, 12]) == pytest.approx((1 + W3) / 4)


def test_quality_by_group_by_hand(quality):
    hr = dict(quality.table.select("group", "hr").iter_rows())
    assert hr == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 0.0})


def test_ndcg_by_group_by_hand(quality):
    ndcg = dict(quality.table.select("group", "ndcg").iter_rows())
    assert ndcg == pytest.approx({"a": 0.5, "b": (W3 + W2) / 3, "c": 0.0})


def test_ugf_is_the_best_minus_the_worst_group(quality):
    assert quality.ugf["hr"] == pytest.approx(2 / 3 - 0.0)
    assert quality.ugf["ndcg"] == pytest.approx(0.5 - 0.0)


def test_metricframe_difference_equals_the_ugf_by_hand(example):
    homepages, held_out, users = example
    ranks = q.held_out_ranks(homepages, held_out).join(users, on="user_id")
    frame = MetricFrame(
        metrics=q.hit_rate_at_k,
        y_true=np.ones(ranks.height),
        y_pred=ranks["rank"].to_numpy(),
        sensitive_features=ranks["activity"].to_numpy(),
    )
    per_group = {g: np.mean([0 < RANKS[u] <= 10 for u in GROUP if GROUP[u] == g]) for g in "abc"}
    assert frame.difference() == pytest.approx(max(per_group.values()) - min(per_group.values()))


def test_overall_quality_counts_every_user(quality):
    assert quality.overall["hr"] == pytest.approx(3 / 6)


def test_group_sizes(quality):
    assert dict(quality.table.select("group", "users").iter_rows()) == {"a": 2, "b": 3, "c": 1}


def test_bootstrap_interval_holds_the_estimate(quality):
    b = quality.table.filter(pl.col("group") == "b").row(0, named=True)
    assert b["hr_lo"] <= b["hr"] <= b["hr_hi"]


def test_bootstrap_interval_of_a_group_with_mixed_outcomes_is_wide(quality):
    b = quality.table.filter(pl.col("group") == "b").row(0, named=True)
    assert b["hr_hi"] - b["hr_lo"] > 0


def test_no_bootstrap_leaves_the_interval_empty(example):
    result = q.quality_by_group(*example, by="activity", n_boot=0)
    assert result.table["hr_lo"].null_count() == result.table.height


def test_a_single_group_has_no_gap(example):
    homepages, held_out, users = example
    one = users.with_columns(pl.lit("all").alias("activity"))
    assert q.quality_by_group(homepages, held_out, one, by="activity", n_boot=0).ugf["hr"] == 0.0


def test_held_out_users_without_a_homepage_are_an_input_error(example):
    homepages, _, users = example
    stranger = pl.DataFrame({"user_id": ["nobody"], "item_id": ["target"]})
    with pytest.raises(InputError, match="no held-out user has a homepage"):
        q.quality_by_group(homepages, stranger, users, by="activity", n_boot=0)


@pytest.fixture(scope="module")
def calibration_case():
    items = pl.DataFrame({"item_id": ["A", "B", "C", "D"], "category": ["x.a", "y.b", "x.c", "y"]})
    homepages = pl.DataFrame(
        {"user_id": ["u1", "u1", "u2", "u2"], "rank": [1, 2, 1, 2], "item_id": ["A", "B", "B", "C"]}
    )
    history = pl.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": ["C", "D", "A"]})
    return homepages, history, items


def test_calibration_kl_by_hand(calibration_case):
    # u1: history x ½, y ½ = homepage → 0.  u2: history x 1; homepage x ½ → q̃_x = 0.99·½ + 0.01·1 = 0.505
    assert q.calibration_kl(*calibration_case) == pytest.approx(np.log(1 / 0.505) / 2)


def test_calibration_of_a_mirrored_mix_is_zero(calibration_case):
    homepages, _, items = calibration_case
    mirror = homepages.select("user_id", "item_id")
    assert q.calibration_kl(homepages, mirror, items) == pytest.approx(0.0)


def test_calibration_alpha_outside_zero_one_is_an_input_error(calibration_case):
    with pytest.raises(InputError, match="alpha"):
        q.calibration_kl(*calibration_case, alpha=0.0)


def test_user_groups():
    users = pl.DataFrame(
        {
            "user_id": ["n", "r", "x"],
            "first_seen": [datetime(2026, 6, 20), datetime(2025, 1, 1), None],
            "region": ["north", None, "south"],
            "device": ["mobile", "desktop", "tablet"],
        }
    )
    history = pl.DataFrame({"user_id": ["n"] + ["r"] * 5 + ["x"] * 20, "item_id": ["i"] * 26})
    groups = {
        r["user_id"]: r for r in q.user_groups(users, history, datetime(2026, 7, 1)).iter_rows(named=True)
    }
    assert [groups[u]["activity"] for u in "nrx"] == ["light", "medium", "heavy"]
    assert [groups[u]["tenure"] for u in "nrx"] == ["new", "returning", "unknown"]
    assert groups["r"]["region"] == "unknown"


@pytest.fixture(scope="module")
def ordered():
    ranks = {"h1": 1, "h2": 2, "l1": 0, "l2": 0, "m1": 1, "m2": 0}
    homepages, held_out = homepages_with_targets(ranks)
    users = pl.DataFrame(
        {"user_id": list(ranks), "activity": ["heavy", "heavy", "light", "light", "medium", "medium"]}
    )
    return q.quality_by_group(homepages, held_out, users, by="activity", n_boot=30, seed=1)


def test_groups_with_an_order_are_shown_in_it(ordered):
    assert ordered.table["group"].to_list() == ["light", "medium", "heavy"]


def test_intervals_stay_with_their_group(ordered):
    rows = {r["group"]: r for r in ordered.table.iter_rows(named=True)}
    assert (rows["light"]["hr_hi"], rows["heavy"]["hr_lo"]) == (0.0, 1.0)  # all misses, all hits


def test_a_group_of_one_has_no_interval(quality):
    c = quality.table.filter(pl.col("group") == "c").row(0, named=True)
    assert (c["hr_lo"], c["hr_hi"]) == (None, None)
