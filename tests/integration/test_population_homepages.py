"""The audit's population path ranks every shopper exactly as ``homepage_for`` does: the model-only list and
the ruled list, slot for slot, under a fairness rule, a pin and a block (on the small demo shop)."""

import polars as pl
import pytest

from core.ranking.homepage import homepage_for, shop_context
from core.ranking.impact import sample_users
from core.ranking.population import population_homepages
from core.ranking.rules import Rule, RuleSet

pytestmark = pytest.mark.slow
NO_HISTORY = "a-shopper-with-no-history"
M = 100  # below the small shop's catalog, so the batch's own top-M selection is what is compared


def draft(items: list[str], exclude_purchased: bool = True) -> RuleSet:
    return RuleSet(
        exclude_purchased=exclude_purchased,
        rules=[
            Rule("fair", "fairness", {"condition": {"seller_tier": "small"}, "p": 0.4}),
            Rule("pin", "pin", {"item_id": items[3], "slot": 2}),
            Rule("block", "block", {"condition": {"item_id": [items[5]]}}),
        ],
    )


def lists(frame, user_id: str) -> list[str]:
    return frame.filter(frame["user_id"] == user_id).sort("slot")["item_id"].to_list()


@pytest.fixture(scope="module")
def sample(demo_shop):
    mp = pytest.MonkeyPatch()
    mp.setenv("HS_DATA", str(demo_shop))
    mp.setenv("HS_DB", str(demo_shop / "shop.duckdb"))
    try:
        items = shop_context().active.catalog.vocab.item_ids
        users = [*sample_users(200, seed=3), NO_HISTORY]
        rules = draft(items)
        yield items, users, rules, population_homepages(users, rules, m=M)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def one_by_one(sample):
    _, users, rules, _ = sample
    return {u: homepage_for(u, rules, m=M) for u in users}


def test_model_only_lists_equal_homepage_for(sample, one_by_one):
    frames = sample[3]
    assert {u: lists(frames["model_only"], u) for u in one_by_one} == {
        u: v.model_only.item_ids for u, v in one_by_one.items()
    }


def test_ruled_lists_equal_homepage_for(sample, one_by_one):
    frames = sample[3]
    assert {u: lists(frames["ruled"], u) for u in one_by_one} == {
        u: v.ruled.item_ids for u, v in one_by_one.items()
    }


def test_users_come_back_in_the_order_given(sample):
    _, users, _, frames = sample
    assert frames["ruled"]["user_id"].unique(maintain_order=True).to_list() == users


def test_the_rules_shape_the_ruled_lists(sample):
    items, _, _, frames = sample
    ruled = frames["ruled"]
    assert set(ruled.filter(ruled["slot"] == 2)["item_id"]) == {items[3]}
    assert items[5] not in set(ruled["item_id"])


def test_the_fairness_rule_shows_small_sellers_more(sample):
    frames = sample[3]
    small = set(shop_context().attrs.filter(pl.col("seller_tier") == "small")["item_id"])
    shown = {name: frames[name]["item_id"].is_in(small).sum() for name in ("model_only", "ruled")}
    assert shown["ruled"] > shown["model_only"]


def test_a_rule_set_that_keeps_bought_items_ranks_the_same(sample):
    items, users, _, _ = sample
    rules = draft(items, exclude_purchased=False)
    frames = population_homepages(users[:40], rules, m=M)
    views = {u: homepage_for(u, rules, m=M) for u in users[:40]}
    assert {u: lists(frames["model_only"], u) for u in views} == {
        u: v.model_only.item_ids for u, v in views.items()
    }
    assert {u: lists(frames["ruled"], u) for u in views} == {u: v.ruled.item_ids for u, v in views.items()}


def test_shoppers_with_too_few_rankable_items_are_ranked_alone(sample):
    items, users, rules, _ = sample
    m = len(items)  # more than any shopper may be shown: each row takes the per-user selection
    frames = population_homepages(users[:20], rules, m=m)
    assert {u: lists(frames["ruled"], u) for u in users[:20]} == {
        u: homepage_for(u, rules, m=m).ruled.item_ids for u in users[:20]
    }
