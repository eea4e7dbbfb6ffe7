"""Every page renders on a small demo shop (Streamlit's AppTest, no browser)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.ranking import kinds
from core.ranking.rules import Rule

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def run_page(path, **state):
    at = AppTest.from_file(str(ROOT / path), default_timeout=120)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_overview(use_demo):
    at = run_page("pages/overview.py")
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["Events", "Users", "Items"]
    assert int(at.metric[0].value.replace(",", "")) > 1000


def test_data_page(use_demo):
    from core.data.features import overview_stats

    at = run_page("pages/data.py")
    stored = overview_stats()["events"]
    assert stored > 0
    assert any(t.value.startswith(f"events stored: {stored:,}") for t in at.text)  # the quality report


def test_model_page(use_demo):
    at = run_page("pages/model.py")
    assert any("Active run" in s.value for s in at.success)


def test_preview_user_switch_changes_grid(use_demo):
    from core.ranking.impact import sample_users

    first, second = sample_users(2, seed=5)
    a = run_page("pages/preview.py", user_id=first)
    b = run_page("pages/preview.py", user_id=second)
    grid = lambda at: [m.value for m in at.markdown if "hs-grid" in m.value]  # noqa: E731
    assert grid(a) and grid(b) and grid(a)[0] != grid(b)[0]
    assert any("scored on cpu" in c.value for c in a.caption)


def test_preview_unknown_user_says_so(use_demo):
    at = AppTest.from_file(str(ROOT / "pages/preview.py"), default_timeout=120)
    at.run()
    at.text_input(key="user_query").input("no-such-shopper-zz").run()
    assert any("No shopper id contains" in w.value for w in at.warning)


def test_rules_page(use_demo):
    at = run_page("pages/rules.py")
    labels = {b.label for b in at.button}
    assert {"Apply to draft", "Save as new version", "Discard draft", "Measure impact"} <= labels
    assert any("the same as saved version 0" in c.value for c in at.caption)


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_a_validation_error_keeps_every_button(use_demo):
    at = run_page("pages/rules.py")
    at.selectbox(key="new_kind").select(kinds.get("pin")).run()
    _button(at, "Apply to draft").click().run()  # no slot: the form says so
    assert any("no slot" in e.value for e in at.error)
    labels = {b.label for b in at.button}
    assert {"Save as new version", "Discard draft", "Measure impact", "Apply to draft"} <= labels


def test_a_pathological_segment_is_a_message_on_the_rules_page(use_demo):
    at = run_page("pages/rules.py")
    at.selectbox(key="new_kind").select(kinds.get("block")).run()
    at.radio(key="form0:block:scope").set_value("A segment").run()
    at.toggle(key="form0:block:as_text").set_value(True).run()
    at.text_input(key="form0:block:expr").input("(" * 5000 + 'region == "north"' + ")" * 5000).run()
    _button(at, "Apply to draft").click().run()
    assert not at.exception
    assert any("nest more than 20 deep" in e.value for e in at.error)


def test_a_rule_is_changed_through_its_form(use_demo):
    from core.ranking.rules import RuleSet

    draft = RuleSet(rules=[Rule("sale", "boost", {"condition": {"brand": [shop_brand()]}, "factor": 1.5})])
    at = run_page("pages/rules.py", draft=draft)
    _button(at, "Edit").click().run()
    assert any(h.value.startswith("Change sale") for h in at.subheader)
    factor = next(n for n in at.number_input if n.label == "Factor")
    assert factor.value == 1.5
    factor.set_value(2.5).run()
    _button(at, "Apply to draft").click().run()
    assert [r.params for r in at.session_state["draft"].rules] == [
        {"condition": {"brand": [shop_brand()]}, "factor": 2.5}
    ]
    assert any("Changed sale: boost items brand" in m.value for m in at.success)


def shop_brand():
    from core.ranking.shop import shop_context

    return shop_context().attrs["brand"].drop_nulls()[0]


def test_saving_an_unchanged_draft_is_refused(use_demo):
    at = run_page("pages/rules.py")
    _button(at, "Save as new version").click().run()
    assert any("nothing to save" in e.value for e in at.error)


def test_a_draft_from_the_preview_with_blank_times_applies_and_redraws(use_demo):
    """'Block item' on the preview, then 'Apply the table to the draft' with no edits: the grid gives NaT for
    the blank times, which crashed the page for good before."""
    from core.ranking.rule_sets import draft_with, load_rule_set

    item = shop_item()
    at = run_page("pages/rules.py", draft=draft_with(load_rule_set(), "block", item_id=item))
    _button(at, "Apply the table to the draft").click().run()
    assert not at.exception
    assert [r.rule_id for r in at.session_state["draft"].rules] == ["block-1"]
    at.run()
    assert not at.exception
    assert {"Save as new version", "Discard draft"} <= {b.label for b in at.button}


def shop_item():
    from core.ranking.shop import shop_context

    return shop_context().active.catalog.vocab.item_ids[0]


def test_explain_names_an_unknown_shopper(use_demo):
    at = run_page("pages/explain.py", explain_user="no-such-shopper-zz")
    assert any("no such shopper" in e.value for e in at.error)


def test_explain_slot_takes_every_change(use_demo):
    from core.ranking.impact import sample_users

    at = run_page("pages/explain.py", user_id=sample_users(1, seed=2)[0])
    for slot in (5, 2, 7, 3):
        at.number_input(key="explain_slot").set_value(slot).run()
        assert at.subheader[0].value.startswith(f"Slot {slot}:")


def test_explain_renders_waterfall(use_demo):
    from core.ranking.impact import sample_users

    at = run_page("pages/explain.py", user_id=sample_users(1, seed=2)[0])
    assert any(c.proto.spec and "waterfall" in c.proto.spec for c in at.get("plotly_chart"))


def test_scoped_pin_reaches_a_shopper_the_store_does_not_know(use_demo):
    from core.ranking.homepage import homepage_for, shop_context
    from core.ranking.rules import Rule, RuleSet

    plain = homepage_for("brand-new-shopper", RuleSet(), k=4, m=5)  # popular items only: 5 candidates
    item = next(
        i for i in shop_context().active.catalog.vocab.item_ids if i not in plain.candidates["item_id"]
    )
    pin = Rule("p", "pin", {"item_id": item, "slot": 2}, scope="users: brand-new-shopper")
    view = homepage_for("brand-new-shopper", RuleSet(rules=[pin]), k=4, m=5)
    assert view.ruled.slots[1].item_id == item and not view.ruled.conflicts
