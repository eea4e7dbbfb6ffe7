"""Rule sets in the store: optimistic versions refuse a stale save; the editor table round-trips."""

import polars as pl
import pytest

from core import store
from core.errors import ConflictError, InputError
from core.ranking.rule_sets import (
    draft_with,
    list_versions,
    load_rule_set,
    rules_from_frame,
    rules_to_frame,
    save_rule_set,
)
from core.ranking.rules import Rule, validate


def test_stale_save_is_refused_and_nothing_is_written(db):
    alice = load_rule_set()
    bob = load_rule_set()
    assert alice.version == bob.version == 0
    saved = save_rule_set(
        draft_with(alice, "pin", item_id="i1", slot=1), expected_version=0, saved_by="alice"
    )
    assert saved.version == 1
    with pytest.raises(ConflictError, match="saved by alice .* as version 1 after you loaded version 0"):
        save_rule_set(draft_with(bob, "block", item_id="i2"), expected_version=0, saved_by="bob")
    assert list_versions()["version"].to_list() == [1]
    assert [r.kind for r in load_rule_set().rules] == ["pin"]
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'save_rule_set'") == 1


def test_table_round_trip_and_validation(db):
    rs = load_rule_set().with_rules(
        [
            Rule("p", "pin", {"item_id": "a", "slot": 3}),
            Rule("c", "cap", {"attribute": "brand", "max": 2}),
            Rule("f", "fairness", {"condition": {"seller_tier": "small"}, "p": 0.25, "alpha": 0.1}),
            Rule("b", "boost", {"condition": {"category": "home", "price_max": 50.0}, "factor": 1.5}),
        ]
    )
    back = rules_from_frame(rules_to_frame(rs))
    assert rules_to_frame(rs.with_rules(back)).equals(rules_to_frame(rs))
    assert back[0].params == {"item_id": "a", "slot": 3} and back[1].params == {
        "attribute": "brand",
        "max": 2,
    }
    assert validate(rs.with_rules(back), {"a"}) == []
    errors = validate(rs.with_rules([Rule("p", "pin", {"item_id": "zz", "slot": 99})]), {"a"})
    assert any("'zz' is not in the catalog" in e for e in errors) and any("slot 99" in e for e in errors)
    with pytest.raises(InputError, match="row 1"):
        rules_from_frame(pl.DataFrame({"kind": ["teleport"], "target": [""]}))
