"""The audit log: one row per action with the signed-in actor, filters, and tampering found."""

from datetime import timedelta

import pytest

from core import store
from core.data.ingest import ingest_catalog, ingest_events
from core.errors import PermissionDenied, SignInError
from core.model_runs import activate_run, active_run
from core.ranking.rule_sets import draft_with, load_rule_set, save_rule_set
from core.release import audit, auth, privacy, releases, users
from core.release.audit import utcnow
from core.release.roles import SYSTEM
from tests.conftest import ACCOUNTS


def rows_since(audit_id: int) -> list[tuple]:
    return store.query(
        "SELECT actor, action, target FROM audit_log WHERE audit_id > ? ORDER BY audit_id", [audit_id]
    ).rows()


def last_id() -> int:
    return store.scalar("SELECT coalesce(max(audit_id), 0) FROM audit_log")


def test_every_action_writes_exactly_one_row_naming_its_actor(shop, actor, tmp_path):
    ada, mia = actor("ada"), actor("mia")
    item = store.scalar("SELECT min(item_id) FROM items")
    shopper = store.scalar("SELECT min(user_id) FROM events")
    first = releases.publish(SYSTEM, "first", expected_head=None)
    log, catalog = tmp_path / "more.csv", tmp_path / "items.csv"
    log.write_text(f"ts,user_id,item_id,event_type\n2024-05-01 10:00:00,u-new,{item},view\n")
    catalog.write_text(f"item_id,title\n{item},A new title\n")
    run_id = active_run()["run_id"]
    actions = [
        (lambda: auth.sign_in("mia", ACCOUNTS["mia"][1]), ("mia", "sign_in", "mia")),
        (lambda: auth.sign_in("mia", "not-the-password"), ("mia", "sign_in_failed", "mia")),
        (lambda: users.create_user(ada, "newbie", "viewer"), ("ada", "create_user", "newbie")),
        (lambda: users.set_role(ada, "newbie", "merchandiser"), ("ada", "change_role", "newbie")),
        (lambda: save_rule_set(draft_with(load_rule_set(), "pin", item_id=item, slot=1), 0, mia),
         ("mia", "save_rule_set", "default v1")),
        (lambda: releases.publish(mia, "pin", expected_head=first.release_id), ("mia", "publish", "release 2")),
        (lambda: releases.publish(mia, "later", expected_head=2, starts_at=utcnow() + timedelta(hours=1)),
         ("mia", "schedule", "release 3")),
        (lambda: releases.cancel_scheduled(mia, 3, "not today"), ("mia", "cancel_schedule", "release 3")),
        (lambda: releases.rollback(mia, 1, "undo", expected_head=3), ("mia", "rollback", "release 4")),
        (lambda: privacy.record_view(mia, shopper, "preview"), ("mia", "view_shopper", privacy.pseudonym(shopper))),
        (lambda: privacy.forget_user(ada, shopper), ("ada", "forget_user", privacy.pseudonym(shopper))),
        (lambda: ingest_events(log, actor=ada), ("ada", "ingest", "more.csv")),
        (lambda: ingest_catalog(catalog, "items", actor=ada), ("ada", "ingest_catalog", "items.csv")),
        (lambda: activate_run(run_id, ada), ("ada", "activate_run", run_id)),
    ]  # fmt: skip
    for act, expected in actions:
        before = last_id()
        try:
            act()
        except SignInError:
            pass
        assert rows_since(before) == [expected]


def test_a_second_look_at_the_same_shopper_soon_after_is_not_a_new_row(shop, actor):
    mia = actor("mia")
    before = last_id()
    assert privacy.record_view(mia, "u1", "explain")
    assert not privacy.record_view(mia, "u1", "explain")
    assert privacy.record_view(mia, "u1", "preview")
    assert len(rows_since(before)) == 2


def test_the_log_never_holds_a_shopper_id(shop, actor):
    shopper = store.scalar("SELECT min(user_id) FROM events")
    privacy.record_view(actor("mia"), shopper, "preview")
    privacy.forget_user(actor("ada"), shopper)
    text = store.query("SELECT target, after::VARCHAR AS after FROM audit_log").write_csv()
    assert shopper not in text


def test_query_filters_by_actor_action_object_and_time(shop, actor):
    pam = actor("pam")
    releases.publish(pam, "one", expected_head=None)
    by_pam = audit.query(pam, actor="pam")
    assert set(by_pam["actor"]) == {"pam"}
    assert by_pam["action"].to_list()[:2] == ["publish", "sign_in"]  # newest first
    assert audit.query(pam, action=["publish"], target="release 1").height == 1
    assert audit.query(pam, since=utcnow() + timedelta(minutes=1)).is_empty()


def test_a_viewer_may_not_read_the_log(shop, actor):
    with pytest.raises(PermissionDenied):
        audit.query(actor("vic"))


def test_an_intact_log_verifies(shop, actor):
    releases.publish(actor("mia"), "one", expected_head=None)
    assert audit.verify() == []


@pytest.mark.parametrize(
    "tamper, found",
    [
        ("UPDATE audit_log SET actor = 'somebody-else' WHERE action = 'publish'", "content was changed"),
        ("DELETE FROM audit_log WHERE action = 'publish'", "a row was removed or inserted"),
        ("DELETE FROM audit_log WHERE audit_id = (SELECT max(audit_id) FROM audit_log)", "rows were removed"),
    ],
)
def test_changing_or_removing_a_row_is_found(shop, actor, tamper, found):
    """No code path may do this (tests/unit/test_architecture.py); a person with the file could: verify
    names the row."""
    releases.publish(actor("mia"), "one", expected_head=None)
    auth.sign_in("vic", ACCOUNTS["vic"][1])
    with store.connect() as con:
        con.execute(tamper)
    assert any(found in problem for problem in audit.verify())
