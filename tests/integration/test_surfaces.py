"""Every surface applies the same rules: a blocked item is in no homepage, search result or similar-items row."""

import pytest

from core.ranking import rows
from core.ranking.homepage import homepage_for
from core.ranking.impact import sample_users
from core.ranking.rules import Rule, RuleSet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shopper(demo_shop):
    import os

    os.environ["HS_DATA"], os.environ["HS_DB"] = str(demo_shop), str(demo_shop / "shop.duckdb")
    return sample_users(1, seed=4)[0]


def _block(*item_ids):
    return RuleSet(rules=[Rule("b", "block", {"condition": {"item_id": list(item_ids)}})])


def test_search_leaves_blocked_items_out(shopper):
    word = rows.personalized_search(shopper, "", k=3, rule_set=RuleSet()).items["title"][0].split()[0]
    found = rows.personalized_search(shopper, word, rule_set=RuleSet()).items["item_id"].to_list()
    assert found
    blocked = rows.personalized_search(shopper, word, rule_set=_block(found[0])).items["item_id"].to_list()
    assert found[0] not in blocked
    assert blocked[: len(found) - 1] == found[1:]


def test_similar_items_leave_blocked_items_out(shopper):
    item = homepage_for(shopper, RuleSet()).ruled.item_ids[0]
    similar = rows.similar_items(item, rule_set=RuleSet()).items["item_id"].to_list()
    blocked = rows.similar_items(item, rule_set=_block(*similar[:2])).items["item_id"].to_list()
    assert not set(similar[:2]) & set(blocked)
    assert blocked[:3] == similar[2:5]


def test_the_other_rows_leave_blocked_items_out(shopper):
    for make in (rows.because_you_viewed, rows.deals_for_you, rows.trending_in_top_category):
        row = make(shopper, rule_set=RuleSet())
        if row is None or row.items.is_empty():
            continue
        first = row.items["item_id"][0]
        assert first not in make(shopper, rule_set=_block(first)).items["item_id"].to_list(), make.__name__


def test_a_boost_moves_search_results_as_it_moves_the_homepage(shopper):
    found = rows.personalized_search(shopper, "", k=12, rule_set=RuleSet()).items["item_id"].to_list()
    last = found[-1]
    boost = RuleSet(rules=[Rule("up", "boost", {"condition": {"item_id": [last]}, "factor": 100})])
    assert rows.personalized_search(shopper, "", k=12, rule_set=boost).items["item_id"][0] == last
