"""Beyond accuracy on the small demo shop: rows per interest, the first run's default rule set, calibration."""

import numpy as np
import pytest

from core import category_paths
from core.ranking import rows
from core.ranking.defaults import default_rule_set, ensure_default_rule_set
from core.ranking.homepage import homepages_for, shop_context
from core.ranking.impact import sample_users
from core.ranking.interests import recent_interests
from core.ranking.metrics import list_metrics
from core.ranking.rule_sets import load_rule_set
from core.ranking.rules import Rule, RuleSet
from core.release.roles import SYSTEM
from tests.conftest import using_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ctx(demo_shop):
    with using_data(demo_shop):
        yield shop_context()


@pytest.fixture(scope="module")
def shopper(ctx):
    """A shopper with three recent interests (the first such, by id)."""
    for user, items, evs, ts in zip(ctx.steps.user_ids, ctx.steps.items, ctx.steps.event_types, ctx.steps.ts):
        found = recent_interests(items, evs, ts, ctx.categories, ctx.now.timestamp())
        if len(found) == 3:
            return user, found
    pytest.fail("the demo shop has no shopper with three recent interests")


@pytest.fixture(scope="module")
def per_interest(ctx, shopper):
    return rows.rows_per_interest(shopper[0], rule_set=RuleSet(), ctx=ctx)


def test_three_interests_give_three_rows(per_interest):
    assert len(per_interest) == 3


def test_each_row_names_its_interest(per_interest, shopper):
    assert [r.title for r in per_interest] == [i.title for i in shopper[1]]


def test_each_title_names_a_category_the_shopper_saw(per_interest, shopper, ctx):
    seen = {
        category_paths.leaf(ctx.categories[i]).replace("_", " ")
        for i in ctx.steps.items[ctx.by_user[shopper[0]]]
    }
    for row in per_interest:
        assert any(leaf in row.title for leaf in seen), row.title


def test_each_row_stays_in_its_interests_top_level(per_interest, shopper):
    for row, interest in zip(per_interest, shopper[1]):
        tops = {category_paths.top_level(c) for c in row.items["category"].to_list()}
        assert tops == {category_paths.top_level(interest.path)}, row.title


def test_a_row_leaves_out_the_items_it_is_because_of(per_interest, shopper, ctx):
    for row, interest in zip(per_interest, shopper[1]):
        because = ctx.active.catalog.vocab.decode(list(interest.items))
        assert not set(row.items["item_id"]) & set(because), row.title


def test_a_blocked_item_is_in_no_row(per_interest, shopper, ctx):
    firsts = [r.items["item_id"][0] for r in per_interest]
    blocked = RuleSet(rules=[Rule("b", "block", {"condition": {"item_id": firsts}})])
    shown = {
        i for r in rows.rows_per_interest(shopper[0], rule_set=blocked, ctx=ctx) for i in r.items["item_id"]
    }
    assert not shown & set(firsts)


def test_a_cold_shopper_gets_no_rows(ctx):
    assert rows.rows_per_interest("nobody-ever-seen", rule_set=RuleSet(), ctx=ctx) == []


def test_the_default_list_is_better_calibrated_than_the_model_alone(demo_shop, ctx):
    with using_data(demo_shop):
        users = sample_users(60, seed=2)
    rule_set = default_rule_set()
    views = homepages_for(users, rule_set, ctx=ctx)
    model = np.mean([list_metrics(v.model_only, v.pool, rule_set, v.user)["calibration_kl"] for v in views])
    ruled = np.mean([v.metrics["calibration_kl"] for v in views])
    assert ruled < model


def test_the_default_list_keeps_the_likeliest_items_first(demo_shop, ctx):
    """The default calibration chooses the items and keeps the ranking's order: the model's own best item
    leads every list, and the chosen items follow in the order the model ranked them."""
    with using_data(demo_shop):
        users = sample_users(60, seed=3)
    views = homepages_for(users, default_rule_set(), ctx=ctx)
    for v in views:
        ranked = {item: r for r, item in enumerate(v.pool.item_ids)}  # candidates come best first
        shown = [ranked[i] for i in v.ruled.item_ids]
        assert shown == sorted(shown), v.user_id
        assert v.ruled.item_ids[0] == v.model_only.item_ids[0], v.user_id
    assert any(v.ruled.item_ids != v.model_only.item_ids for v in views)


@pytest.fixture(scope="module")
def first_rules(demo_shop, tmp_path_factory):
    """The rule sets a shop has after the first run's step, then after a second first run."""
    from tests.conftest import copy_shop

    data = copy_shop(demo_shop, tmp_path_factory.mktemp("first") / "data")
    with using_data(data):
        first = ensure_default_rule_set(SYSTEM)
        again = ensure_default_rule_set(SYSTEM)
        return first, again, load_rule_set()


def test_the_first_run_saves_the_default_rules_as_version_1(first_rules):
    assert first_rules[2].version == 1


def test_the_default_rules_carry_a_calibration_rule(first_rules):
    assert [r.kind for r in first_rules[2].rules] == ["calibration"]


def test_a_second_first_run_keeps_the_saved_rules(first_rules):
    assert first_rules[1].version == first_rules[0].version == 1
