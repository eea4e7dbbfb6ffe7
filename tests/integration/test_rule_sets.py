"""Rule sets in the store: optimistic versions refuse a stale save; the editor table round-trips."""

import json

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
from core.release.roles import SYSTEM
from tests.conftest import stored_account


def test_stale_save_is_refused_and_nothing_is_written(db):
    alice = load_rule_set()
    bob = load_rule_set()
    assert alice.version == bob.version == 0
    saved = save_rule_set(
        draft_with(alice, "pin", item_id="i1", slot=1), expected_version=0, actor=stored_account("alice")
    )
    assert saved.version == 1
    with pytest.raises(ConflictError, match="saved by alice .* as version 1 after you loaded version 0"):
        save_rule_set(draft_with(bob, "block", item_id="i2"), expected_version=0, actor=stored_account("bob"))
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
    assert any("'zz' is not in the catalog" in e for e in errors)
    assert any("slot 99" in e for e in errors)
    with pytest.raises(InputError, match="row 1"):
        rules_from_frame(pl.DataFrame({"kind": ["teleport"], "target": [""]}))


def test_apply_edits_validates_against_the_catalog(db, tmp_path):
    from core.data.ingest import ingest_catalog
    from core.ranking.rule_sets import apply_edits

    (tmp_path / "items.csv").write_text("item_id,title\ni1,One\ni2,Two\n")
    ingest_catalog(tmp_path / "items.csv", actor=SYSTEM)
    draft = load_rule_set()
    good = rules_to_frame(draft_with(draft, "pin", item_id="i1", slot=2))
    applied = apply_edits(draft, good)
    assert [(r.kind, r.params["item_id"], r.params["slot"]) for r in applied.rules] == [("pin", "i1", 2)]
    bad = rules_to_frame(draft_with(draft, "pin", item_id="ghost", slot=2))
    with pytest.raises(InputError, match="The draft was not changed") as exc:
        apply_edits(draft, bad)
    assert "ghost" in str(exc.value) and draft.rules == []


def test_shopper_search_resolves_exact_and_single_matches(db, tmp_path):
    from core.data.ingest import ingest_catalog
    from core.ranking.rows import resolve_user

    (tmp_path / "users.csv").write_text("user_id,region\nu1,n\nu10,n\nu2,s\n")
    ingest_catalog(tmp_path / "users.csv", actor=SYSTEM)
    assert resolve_user(" u1 ") == ("u1", ["u1", "u10"])  # an exact id wins
    assert resolve_user("2") == ("u2", ["u2"])  # the only match
    assert resolve_user("u") == (None, ["u1", "u2", "u10"])  # several: the page asks
    assert resolve_user("zz") == (None, [])


def test_blank_cells_from_the_grid_are_defaults_not_nan(db):
    """The pandas frame st.data_editor returns: NaT for a blank time, NaN / None for blank text and numbers."""
    import pandas as pd

    draft = draft_with(draft_with(load_rule_set(), "block", item_id="i1"), "pin", item_id="i2", slot=1)
    grid = rules_to_frame(draft).to_pandas()
    grid.loc[len(grid)] = [
        None,
        "boost",
        "brand=X",
        float("nan"),
        None,
        None,
        None,
        pd.NaT,
        pd.NaT,
        None,
        None,
    ]
    grid.loc[len(grid)] = [
        float("nan"),
        "block",
        "brand=Y",
        None,
        None,
        float("nan"),
        float("nan"),
        pd.NaT,
        pd.NaT,
        float("nan"),
        float("nan"),
    ]
    rules = rules_from_frame(grid)
    assert [r.rule_id for r in rules] == ["block-1", "pin-1", "boost-1", "block-2"]
    assert all(r.starts_at is None and r.ends_at is None for r in rules)
    assert [r.scope for r in rules] == ["all"] * 4
    assert [r.note for r in rules] == [""] * 4
    assert rules[2].params == {"condition": {"brand": ["X"]}}
    assert rules[2].spec.factor == 1.5
    assert validate(draft.with_rules(rules)) == []
    assert rules_to_frame(draft.with_rules(rules)).height == 4  # drawn again without a crash


def test_saving_nothing_new_is_refused(db):
    saved = save_rule_set(
        draft_with(load_rule_set(), "block", item_id="i1"), expected_version=0, actor=stored_account("alice")
    )
    with pytest.raises(InputError, match="nothing to save: the draft is the same as version 1"):
        save_rule_set(load_rule_set(), expected_version=saved.version, actor=stored_account("alice"))
    assert list_versions()["version"].to_list() == [1]


def test_history_diff_and_restore_as_draft(db):
    from core.ranking.rule_sets import diff, restore_as_draft

    v1 = save_rule_set(
        draft_with(load_rule_set(), "block", item_id="i1"), 0, stored_account("alice"), note="first"
    )
    v2 = save_rule_set(draft_with(v1, "pin", item_id="i2", slot=3), 1, stored_account("bob"), note="second")
    change = diff(load_rule_set(version=1), load_rule_set(version=2))
    assert [r.rule_id for r in change.added] == ["pin-1"]
    assert change.lines() == ["+ pin-1: pin item i2 to slot 3"]
    restored = restore_as_draft(1)
    assert restored.version == v2.version  # based on the latest: saving it makes version 3
    assert [r.rule_id for r in restored.rules] == ["block-1"]
    v3 = save_rule_set(restored, restored.version, stored_account("carl"))
    assert v3.version == 3
    assert [r.kind for r in load_rule_set().rules] == ["block"]


def test_an_old_saved_version_still_loads(db):
    """Versions saved before the rule kinds: calibration inside diversity, a refused parameter, flat keys."""
    old = {
        "rule_set_id": "default",
        "version": 1,
        "name": "",
        "exclude_purchased": True,
        "rules": [
            {
                "rule_id": "d",
                "kind": "diversity",
                "params": {"method": "mmr", "lambda": 0.7, "calibration": 0.2},
                "scope": "all",
                "starts_at": None,
                "ends_at": None,
                "enabled": True,
                "note": "",
            },
            {
                "rule_id": "b",
                "kind": "bury",
                "params": {"brand": "X", "delta": -0.3},
                "scope": "all",
                "starts_at": "2026-10-01T00:00:00",
                "ends_at": None,
                "enabled": True,
                "note": "",
            },
        ],
    }
    with store.transaction() as con:
        con.execute("INSERT INTO rule_sets VALUES ('default', 1, '', ?, 'old', now(), '')", [json.dumps(old)])
    rs = load_rule_set()
    assert [(r.rule_id, r.kind) for r in rs.rules] == [
        ("d", "diversity"),
        ("d-calibration", "calibration"),
        ("b", "bury"),
    ]
    assert rs.rules[2].params == {"condition": {"brand": "X"}, "delta": -0.3}
    assert any("no parameter 'delta'" in e for e in validate(rs))
    assert rules_to_frame(rs).height == 3
