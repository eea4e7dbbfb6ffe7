"""The snapshot's two steps: frames read from the store, written to Parquet and read back (as a release
artifact will carry them) build a context that ranks every homepage exactly as the store's does."""

import json
from datetime import datetime

import polars as pl
import pytest

from core.model_runs import load_active_model
from core.ranking.homepage import homepages_for
from core.ranking.impact import sample_users
from core.ranking.rules import Rule, RuleSet
from core.ranking.shop import ShopFrames, build_context, read_shop, shop_context

pytestmark = pytest.mark.slow
FRAMES = ("users", "steps", "promotions", "popularity")


def test_frames_from_files_rank_like_the_store(use_demo, tmp_path):
    frames = read_shop()
    for name in FRAMES:
        getattr(frames, name).write_parquet(tmp_path / f"{name}.parquet")
    (tmp_path / "clock.json").write_text(json.dumps({"now": frames.now.isoformat()}))
    again = ShopFrames(
        now=datetime.fromisoformat(json.loads((tmp_path / "clock.json").read_text())["now"]),
        **{name: pl.read_parquet(tmp_path / f"{name}.parquet") for name in FRAMES},
    )
    elsewhere = build_context(again, load_active_model())
    items = shop_context().active.catalog.vocab.item_ids
    rules = RuleSet(
        rules=[
            Rule("pin", "pin", {"item_id": items[3], "slot": 2}),
            Rule("promo", "reserve", {"condition": {"promoted": True}, "slots": 2}),
            Rule("fair", "fairness", {"condition": {"seller_tier": "small"}, "p": 0.3}),
            Rule("div", "diversity", {"method": "mmr", "lambda": 0.6}),
        ]
    )
    users = [*sample_users(40, seed=9), "a-shopper-with-no-history"]
    from_store = homepages_for(users, rules)
    from_files = homepages_for(users, rules, ctx=elsewhere)
    assert [v.ruled.item_ids for v in from_files] == [v.ruled.item_ids for v in from_store]
    assert [[s.codes for s in v.ruled.slots] for v in from_files] == [
        [s.codes for s in v.ruled.slots] for v in from_store
    ]
    assert from_files[-1].source.startswith("fallback")
