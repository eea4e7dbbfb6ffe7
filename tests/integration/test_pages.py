"""Every page renders on a small demo shop (Streamlit's AppTest, no browser)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.ranking import kinds
from core.ranking.rules import Rule
from tests.conftest import ACCOUNTS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_page(session_of):
    """Run a page as an account of ``ACCOUNTS`` (signed in, as app.py leaves it) with extra session state."""

    def run(path, as_user="mia", **state):
        at = AppTest.from_file(str(ROOT / path), default_timeout=120)
        at.session_state["session_token"] = session_of(as_user)
        for key, value in state.items():
            at.session_state[key] = value
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return run


def test_overview(run_page):
    at = run_page("pages/overview.py", as_user="vic")
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["Events", "Users", "Items"]
    assert int(at.metric[0].value.replace(",", "")) > 1000


def test_data_page(run_page):
    from core.data.features import overview_stats

    at = run_page("pages/data.py", as_user="ada")
    stored = overview_stats()["events"]
    assert stored > 0
    assert any(t.value.startswith(f"events stored: {stored:,}") for t in at.text)  # the quality report


def test_model_page(run_page):
    at = run_page("pages/model.py", as_user="ada")
    assert any("Active run" in s.value for s in at.success)


def test_preview_user_switch_changes_grid(run_page):
    from core.ranking.impact import sample_users

    first, second = sample_users(2, seed=5)
    a = run_page("pages/preview.py", user_id=first)
    b = run_page("pages/preview.py", user_id=second)
    grid = lambda at: [m.value for m in at.markdown if "hs-grid" in m.value]  # noqa: E731
    assert grid(a) and grid(b) and grid(a)[0] != grid(b)[0]
    assert any("scored on cpu" in c.value for c in a.caption)


def test_opening_a_shopper_is_audited_and_a_viewer_sees_a_pseudonym(run_page):
    from core import store
    from core.ranking.impact import sample_users
    from core.release.privacy import pseudonym

    (shopper,) = sample_users(1, seed=11)
    seen = "SELECT count(*) FROM audit_log WHERE actor = ? AND action = 'view_shopper' AND target = ?"
    before = store.scalar(seen, ["vic", pseudonym(shopper)])
    viewer = run_page("pages/preview.py", as_user="vic", user_id=shopper)
    assert f"Shopper {pseudonym(shopper)}" in [h.value for h in viewer.subheader]
    assert store.scalar(seen, ["vic", pseudonym(shopper)]) == before + 1
    merchandiser = run_page("pages/preview.py", as_user="mia", user_id=shopper)
    assert f"Shopper {shopper}" in [h.value for h in merchandiser.subheader]


def test_preview_unknown_user_says_so(run_page):
    at = run_page("pages/preview.py")
    at.text_input(key="user_query").input("no-such-shopper-zz").run()
    assert any("No shopper id contains" in w.value for w in at.warning)


def test_rules_page(run_page):
    at = run_page("pages/rules.py")
    labels = {b.label for b in at.button}
    assert {"Apply to draft", "Save as new version", "Discard draft", "Measure impact"} <= labels
    assert any("the same as saved version 0" in c.value for c in at.caption)


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_a_validation_error_keeps_every_button(run_page):
    at = run_page("pages/rules.py")
    at.selectbox(key="new_kind").select(kinds.get("pin")).run()
    _button(at, "Apply to draft").click().run()  # no slot: the form says so
    assert any("no slot" in e.value for e in at.error)
    labels = {b.label for b in at.button}
    assert {"Save as new version", "Discard draft", "Measure impact", "Apply to draft"} <= labels


def test_a_pathological_segment_is_a_message_on_the_rules_page(run_page):
    at = run_page("pages/rules.py")
    at.selectbox(key="new_kind").select(kinds.get("block")).run()
    at.radio(key="form0:block:scope").set_value("A segment").run()
    at.toggle(key="form0:block:as_text").set_value(True).run()
    at.text_input(key="form0:block:expr").input("(" * 5000 + 'region == "north"' + ")" * 5000).run()
    _button(at, "Apply to draft").click().run()
    assert not at.exception
    assert any("nest more than 20 deep" in e.value for e in at.error)


def test_a_rule_is_changed_through_its_form(run_page):
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


def test_saving_an_unchanged_draft_is_refused(run_page):
    at = run_page("pages/rules.py")
    _button(at, "Save as new version").click().run()
    assert any("nothing to save" in e.value for e in at.error)


def test_a_draft_from_the_preview_with_blank_times_applies_and_redraws(run_page):
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


def test_explain_names_an_unknown_shopper(run_page):
    at = run_page("pages/explain.py", explain_user="no-such-shopper-zz")
    assert any("no such shopper" in e.value for e in at.error)


def test_explain_slot_takes_every_change(run_page):
    from core.ranking.impact import sample_users

    at = run_page("pages/explain.py", user_id=sample_users(1, seed=2)[0])
    for slot in (5, 2, 7, 3):
        at.number_input(key="explain_slot").set_value(slot).run()
        assert at.subheader[0].value.startswith(f"Slot {slot}:")


def test_explain_renders_waterfall(run_page):
    from core.ranking.impact import sample_users

    at = run_page("pages/explain.py", user_id=sample_users(1, seed=2)[0])
    assert any(c.proto.spec and "waterfall" in c.proto.spec for c in at.get("plotly_chart"))


def test_scoped_pin_reaches_a_shopper_the_store_does_not_know(run_page):
    from core.ranking.homepage import homepage_for, shop_context
    from core.ranking.rules import Rule, RuleSet

    plain = homepage_for("brand-new-shopper", RuleSet(), k=4, m=5)  # popular items only: 5 candidates
    item = next(
        i for i in shop_context().active.catalog.vocab.item_ids if i not in plain.candidates["item_id"]
    )
    pin = Rule("p", "pin", {"item_id": item, "slot": 2}, scope="users: brand-new-shopper")
    view = homepage_for("brand-new-shopper", RuleSet(rules=[pin]), k=4, m=5)
    assert view.ruled.slots[1].item_id == item and not view.ruled.conflicts


def test_sign_in_page_refuses_a_wrong_password_and_signs_in(run_page):
    from core.release.auth import session_account

    at = AppTest.from_file(str(ROOT / "pages/sign_in.py"), default_timeout=120).run()
    at.text_input[0].input("vic")
    at.text_input[1].input("not-her-password")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["wrong user name or password"]
    at.text_input[1].input(ACCOUNTS["vic"][1])
    at.button[0].click().run()
    assert session_account(at.session_state["session_token"]).username == "vic"


def signed_in_app(token: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["session_token"] = token
    return at.run()


def test_app_lists_no_publish_page_for_a_viewer(session_of):
    at = signed_in_app(session_of("vic"))
    assert any("Signed in as **vic**" in c.value for c in at.sidebar.caption)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/publish.py")


def test_app_lists_the_publish_page_for_a_merchandiser(session_of):
    at = signed_in_app(session_of("mia"))
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/audit.py")  # the bias audit: product managers and up
    assert at.switch_page("pages/publish.py").run().title[0].value == "Publish"


def test_app_lists_the_audit_page_for_a_product_manager(session_of):
    at = signed_in_app(session_of("pam")).switch_page("pages/audit.py").run()
    assert at.title[0].value == "Bias audit"


def test_app_without_a_session_shows_only_sign_in(run_page):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert at.title[0].value == "Sign in to Homepage Studio"


def test_publish_page_shows_diff_history_and_audit_log(run_page):
    at = run_page("pages/publish.py")
    labels = {b.label for b in at.button}
    assert {"Publish…", "Refresh diff", "Measure impact on 200 shoppers"} <= labels
    assert at.subheader[-1].value == "Audit log"


def test_publish_page_shows_the_audits_flags_for_the_draft_before_the_button(run_page):
    from core.insight.audit_population import draft_flags
    from core.ranking.rule_sets import load_rule_set
    from core.release.roles import Account, Role

    at = run_page("pages/publish.py")
    next(b for b in at.button if b.label == "Measure impact on 200 shoppers").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Bias audit of the draft" in m.value for m in at.markdown)
    expected = draft_flags(Account("mia", Role.MERCHANDISER), load_rule_set(), sample=200)
    assert [w.value for w in at.warning if w.value in expected] == expected
    assert bool(expected) or any(c.value.startswith("No flags") for c in at.caption)


def test_publish_page_refuses_a_viewer(run_page):
    at = run_page("pages/publish.py", as_user="vic")
    assert "may not publish" in at.error[0].value


def test_users_page_creates_an_account_and_shows_its_one_time_password(run_page):
    at = run_page("pages/users.py", as_user="ada")
    at.text_input[0].input("newbie")
    at.button[0].click().run()
    assert "One-time password for **newbie**" in at.success[0].value
    assert "newbie" in at.dataframe[0].value["username"].to_list()


def test_sign_in_offers_the_oidc_provider_when_one_is_configured(run_page):
    at = AppTest.from_file(str(ROOT / "pages/sign_in.py"), default_timeout=120)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "a-long-random-cookie-secret-for-tests",
        "client_id": "homepage-studio",
        "client_secret": "not-a-real-secret",
        "server_metadata_url": "https://id.example.com/.well-known/openid-configuration",
    }
    at.run()
    assert at.button[0].label == "Sign in with your company account"
    assert "User name" in [t.label for t in at.text_input]  # local accounts still work (the first admin)
