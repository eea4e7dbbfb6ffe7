"""The candidates a shopper's rules need besides the model's top-M: here, a calibration that chooses from
every category of the shopper's mix gets the best few of every top-level category, however low the model
ranks them."""

from datetime import datetime
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from core.data.sequences import Vocab
from core.ranking.candidates import GROUP_BEST, build_candidates, needed_items
from core.ranking.items import ItemTable
from core.ranking.pipeline import rank_homepage
from core.ranking.rules import Rule, RuleSet
from core.ranking.state import UserContext

NOW = datetime(2026, 11, 1)
N = 400  # items 0-299 in top-levels a and b, 300-399 in c; the model ranks every c below every a and b


@pytest.fixture(scope="module")
def ctx():
    """The snapshot a candidate builder reads, for the catalog above."""
    ids = [f"i{i}" for i in range(N)]
    catalog = pl.DataFrame(
        {
            "item_id": ids,
            "category": [("a", "b")[i % 2] + ".leaf" if i < 300 else "c.leaf" for i in range(N)],
            "in_stock": [i != 300 for i in range(N)],  # c's likeliest item is out of stock
        }
    )
    return SimpleNamespace(
        active=SimpleNamespace(catalog=SimpleNamespace(vocab=Vocab(ids))),
        table=ItemTable(catalog),
        in_stock=np.concatenate([[False], catalog["in_stock"].to_numpy()]),
        embeddings=np.random.default_rng(4).normal(size=(N + 1, 4)),
        now=NOW,
    )


def scores():
    return np.concatenate([[-np.inf], -np.arange(N, dtype=float)])  # (N+1,): item i scores -i


def candidates(ctx, pool: str, m: int = 100):
    rules = [Rule("cal", "calibration", {"strength": 0.6, "pool": pool, "order": "ranked"})]
    active = RuleSet(rules=rules).rules_for({"user_id": "u"}, NOW)
    return build_candidates(ctx, scores(), np.zeros(0, np.int64), needed_items(ctx, active, NOW), m, False)


def test_a_tables_top_categories_group_its_in_stock_rows():
    table = ItemTable(
        pl.DataFrame(
            {
                "item_id": ["p", "q", "r", "s", "t"],
                "category": ["x.a", "y.b", "x.c", None, "y.a"],
                "in_stock": [True, True, False, True, True],
            }
        )
    )
    assert [g.tolist() for g in table.in_stock_by_top_category()] == [[3], [0], [1, 4]]  # unknown, x, y


def test_a_calibration_from_the_best_candidates_gets_no_low_category(ctx):
    c = candidates(ctx, pool="best")
    assert len(c.item_ids) == 100
    assert "c" not in set(c.top_categories())


def test_a_calibration_from_every_category_gets_the_best_of_a_low_one(ctx):
    c = candidates(ctx, pool="mix")
    low = [item for item, top in zip(c.item_ids, c.top_categories()) if top == "c"]
    assert low == [f"i{i}" for i in range(301, 301 + GROUP_BEST)]  # the best in stock, best first
    assert c.item_ids[:100] == [f"i{i}" for i in range(100)]  # the model's top-M come first, unchanged
    assert len(set(c.item_ids)) == len(c.item_ids)


def test_the_calibrated_homepage_gives_a_low_category_its_share(ctx):
    """Half of the shopper's history is in c: with the mix pool about half the list is, without it none."""
    user = UserContext("u", {}, {"a.leaf": 0.5, "c.leaf": 0.5}, set())
    top_of = dict(zip(ctx.table.frame["item_id"], ctx.table.top_categories()))

    def shown_in_c(pool: str) -> int:
        rules = [Rule("cal", "calibration", {"strength": 0.6, "pool": pool})]
        home = rank_homepage(user, candidates(ctx, pool), RuleSet(rules=rules), 24, NOW)
        return [top_of[i] for i in home.item_ids].count("c")

    assert shown_in_c("best") == 0
    assert 10 <= shown_in_c("mix") <= 14
