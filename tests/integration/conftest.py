import polars as pl
import pytest

from tests.conftest import ACCOUNTS, copy_shop, using_data


@pytest.fixture
def shop(demo_shop, tmp_path, monkeypatch):
    """A fresh copy of the demo shop (trained model, ``ACCOUNTS``, nothing published): its data folder."""
    data = copy_shop(demo_shop, tmp_path / "data")
    monkeypatch.setenv("HS_DATA", str(data))
    monkeypatch.setenv("HS_DB", str(data / "shop.duckdb"))
    return data


@pytest.fixture
def actor(shop):
    """Sign an account of ``ACCOUNTS`` in (password, rate limit and all): ``actor("mia")`` → Account."""
    from core.release import auth

    return lambda name: auth.authenticate(name, ACCOUNTS[name][1])


def publish_rules(rules: list, note: str) -> int:
    """Save ``rules`` as the next rule-set version and publish it; returns the release id."""
    from core.ranking.rule_sets import load_rule_set, save_rule_set
    from core.release import releases
    from core.release.roles import SYSTEM

    current = load_rule_set()
    save_rule_set(current.with_rules(rules), current.version, SYSTEM, note)
    head = releases.release_state().head_id
    return releases.publish(SYSTEM, note, expected_head=head).release_id


@pytest.fixture(scope="session")
def released(demo_shop, tmp_path_factory):
    """A copy of the demo shop with release 1 (no rules) and release 2 (a rule of most kinds), shared by
    the storefront API's tests, which must not change it (copy it first); returns (data folder, the items
    the rules name). Tests point ``HS_DATA`` at it themselves (``using_data``)."""
    from core.ranking.rules import Rule
    from core.release import releases
    from core.release.artifact import open_live
    from core.release.roles import SYSTEM

    data = copy_shop(demo_shop, tmp_path_factory.mktemp("serve") / "data")
    with using_data(data):
        releases.publish(SYSTEM, "first", expected_head=None)
        items = open_live()[1].table("items")
        promoted = items.filter(pl.col("promoted"))["item_id"].to_list()
        named = {"pinned": items["item_id"][7], "blocked": items["item_id"][3], "promoted": promoted[0]}
        publish_rules(
            [
                Rule("pin-1", "pin", {"item_id": named["pinned"], "slot": 1}),
                Rule("block-1", "block", {"condition": {"item_id": [named["blocked"]]}}),
                Rule("reserve-1", "reserve", {"condition": {"promoted": True}, "slots": 2}),
                Rule("boost-1", "boost", {"condition": {"seller_tier": "small"}, "factor": 1.5}),
                Rule("fair-1", "fairness", {"condition": {"seller_tier": "small"}, "p": 0.3}),
                Rule("div-1", "diversity", {"method": "mmr", "lambda": 0.7}),
            ],
            "rules of most kinds",
        )
    return data, named
