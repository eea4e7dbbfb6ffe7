"""Exposure and popularity metrics of the bias audit against values computed by hand on a tiny shop.

The shop: four items, two users.

    item  seller tier  brand category created    interactions      u1: A@1, B@2
    A     s1     small b1    x.a      2026-01-01 50                u2: B@1, C@3
    B     s2     large b2    y.b      2026-01-01 30
    C     s2     large b2    x.c      2026-06-25 15  (new)
    D     s1     small b1    y        2026-01-01  5  (never shown)

Position weights 1/log2(1+r): w1 = 1, w2 = 1/log2 3 = 0.630930, w3 = 1/log2 4 = 0.5.
Exposure: A = 1, B = 1 + 0.630930 = 1.630930, C = 0.5, D = 0; total 3.130930.
"""

from datetime import datetime

import numpy as np
import polars as pl
import pytest

from core.errors import InputError
from core.insight import audit as m

NOW = datetime(2026, 7, 1)
W2 = 1 / np.log2(3)
TOTAL = 1 + (1 + W2) + 0.5


@pytest.fixture(scope="module")
def items():
    old, new = datetime(2026, 1, 1), datetime(2026, 6, 25)
    frame = pl.DataFrame(
        {
            "item_id": ["A", "B", "C", "D"],
            "seller_id": ["s1", "s2", "s2", "s1"],
            "seller_tier": ["small", "large", "large", "small"],
            "brand": ["b1", "b2", "b2", "b1"],
            "category": ["x.a", "y.b", "x.c", "y"],
            "created_at": [old, old, new, old],
            "interactions": [50, 30, 15, 5],
        }
    )
    return m.item_groups(frame, NOW)


@pytest.fixture(scope="module")
def homepages():
    return pl.DataFrame(
        {"user_id": ["u1", "u1", "u2", "u2"], "rank": [1, 2, 1, 3], "item_id": ["A", "B", "B", "C"]}
    )


@pytest.fixture(scope="module")
def history():
    return pl.DataFrame({"user_id": ["u1", "u1", "u2", "u2"], "item_id": ["C", "D", "A", "A"]})


@pytest.fixture(scope="module")
def users():
    return pl.DataFrame({"user_id": ["u1", "u2"], "activity": ["g1", "g2"]})


def test_position_weight_follows_one_over_log2_of_one_plus_rank():
    assert m.position_weight([1, 2, 3]).tolist() == pytest.approx([1.0, W2, 0.5])


def test_position_weight_rejects_rank_zero():
    with pytest.raises(InputError, match="1-based"):
        m.position_weight([0, 1])


def test_item_exposure_weights_by_rank(homepages, items):
    exp = dict(m.item_exposure(homepages, items).iter_rows())
    assert exp == pytest.approx({"A": 1.0, "B": 1 + W2, "C": 0.5, "D": 0.0})


def test_item_exposure_of_a_lower_slot_is_smaller():
    one = pl.DataFrame({"user_id": ["u", "u"], "rank": [1, 5], "item_id": ["top", "low"]})
    exp = dict(m.item_exposure(one).iter_rows())
    assert exp["top"] > exp["low"]


def test_item_groups_derive_top_category_and_age(items):
    rows = {r["item_id"]: r for r in items.iter_rows(named=True)}
    assert (rows["A"]["top_category"], rows["D"]["top_category"]) == ("x", "y")
    assert [rows[i]["item_age"] for i in "ABCD"] == ["established", "established", "new", "established"]


def test_exposure_share_by_seller_tier_against_the_catalog(homepages, items):
    shares = {r["group"]: r for r in m.exposure_share(homepages, items, "seller_tier").iter_rows(named=True)}
    assert shares["small"]["exposure_share"] == pytest.approx(1 / TOTAL)  # 0.3194
    assert shares["small"]["target_share"] == pytest.approx(0.5)
    assert shares["small"]["ratio"] == pytest.approx(2 / TOTAL)  # 0.6388
    assert shares["large"]["gap"] == pytest.approx((1.5 + W2) / TOTAL - 0.5)


def test_exposure_share_against_relevance_uses_the_demand_share(homepages, items):
    shares = dict(
        m.exposure_share(homepages, items, "seller_tier", "relevance")
        .select("group", "target_share")
        .iter_rows()
    )
    assert shares == pytest.approx({"small": 0.55, "large": 0.45})  # (50 + 5) / 100 and (30 + 15) / 100


def test_exposure_share_leaves_out_of_stock_items_out_of_the_target(homepages, items):
    stocked = items.with_columns(pl.Series("in_stock", [True, True, True, False]))
    shares = dict(
        m.exposure_share(homepages, stocked, "seller_tier").select("group", "target_share").iter_rows()
    )
    assert shares["small"] == pytest.approx(1 / 3)


def test_exposure_share_rejects_an_unknown_target(homepages, items):
    with pytest.raises(InputError, match="target"):
        m.exposure_share(homepages, items, "seller_tier", "popularity")


def test_exposure_disparity_aggregates_ratio_and_gap(homepages, items):
    d = m.exposure_disparity(m.exposure_share(homepages, items, "seller_tier"))
    small, large = 2 / TOTAL, 2 * (1.5 + W2) / TOTAL
    assert d["min_max_ratio"] == pytest.approx(small / large)  # 0.4693
    assert d["max_abs_diff"] == pytest.approx(0.5 - 1 / TOTAL)  # 0.1806


def test_a_single_group_is_exactly_on_target(homepages, items):
    one = items.with_columns(pl.lit("everyone").alias("seller_tier"))
    d = m.exposure_disparity(m.exposure_share(homepages, one, "seller_tier"))
    assert d == pytest.approx({"min_max_ratio": 1.0, "max_abs_diff": 0.0})


def test_gini_of_equal_exposure_is_zero():
    assert m.gini([2.0, 2.0, 2.0, 2.0]) == 0.0


def test_gini_of_all_exposure_on_one_item_is_one():
    assert m.gini([0.0, 0.0, 0.0, 7.0]) == pytest.approx(1.0)


def test_gini_by_hand():
    # x = 1, 2, 3: Σ(2i − n − 1)x = −2 + 0 + 6 = 4; 4 / (3 · 6) = 2/9; × n/(n−1) = 3/2 → 1/3
    assert m.gini([3, 1, 2]) == pytest.approx(1 / 3)


def test_gini_limits():
    assert m.gini([5.0]) == 0.0
    assert m.gini([0.0, 0.0]) == 0.0


def test_gini_of_nothing_is_an_input_error():
    with pytest.raises(InputError, match="Gini"):
        m.gini([])


def test_exposure_gini_of_items_and_sellers(homepages, items):
    # items: x = 0, 0.5, 1, 1 + w2: Σ(2i − 5)x = −0.5 + 1 + 3(1 + w2); / (4 · total) · 4/3
    by_hand = (-0.5 + 1 + 3 * (1 + W2)) / (4 * TOTAL) * 4 / 3
    assert m.exposure_gini(homepages, items) == pytest.approx(by_hand)  # 0.5742
    # sellers: s1 = 1, s2 = 1.5 + w2: (−1 + 1.5 + w2) / (2 · total) · 2
    assert m.exposure_gini(homepages, items, "seller_id") == pytest.approx((0.5 + W2) / TOTAL)


def test_lorenz_curve_runs_from_zero_to_one():
    curve = m.lorenz_curve([1.0, 3.0])
    assert curve["exposure_share"].to_list() == pytest.approx([0.0, 0.25, 1.0])
    assert curve["population_share"].to_list() == pytest.approx([0.0, 0.5, 1.0])


def test_catalog_coverage_at_k(homepages, items):
    assert m.catalog_coverage(homepages, items) == pytest.approx(0.75)  # A, B, C of four
    assert m.catalog_coverage(homepages, items, k=1) == pytest.approx(0.5)  # A, B


def test_long_tail_is_outside_the_head_of_80_percent(items):
    tail = dict(m.long_tail(items).select("item_id", "long_tail").iter_rows())
    assert tail == {"A": False, "B": False, "C": True, "D": True}  # A + B = 80 of 100 interactions


def test_average_recommendation_popularity(homepages, items):
    assert m.average_recommendation_popularity(homepages, items) == pytest.approx(31.25)  # (40 + 22.5) / 2


def test_average_long_tail_share(homepages, items):
    assert m.average_long_tail_share(homepages, items) == pytest.approx(0.25)  # (0 + 1/2) / 2


def test_popularity_lift_against_each_groups_own_history(homepages, history, items, users):
    lift = dict(
        m.popularity_lift(homepages, history, items, users, "activity").select("group", "lift").iter_rows()
    )
    # g1: history C, D → 10, homepage A, B → 40: 3.0; g2: history A (once, repeats ignored) → 50, homepage 22.5
    assert lift == pytest.approx({"g1": 3.0, "g2": -0.55})


def test_empty_homepages_are_an_input_error(items):
    empty = pl.DataFrame(schema={"user_id": pl.Utf8, "rank": pl.Int64, "item_id": pl.Utf8})
    with pytest.raises(InputError, match="homepages frame is empty"):
        m.item_exposure(empty, items)


def test_a_missing_column_is_named(items):
    with pytest.raises(InputError, match="no column"):
        m.item_exposure(pl.DataFrame({"user_id": ["u"], "item_id": ["A"]}), items)
