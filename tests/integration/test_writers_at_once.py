"""Every kind of writer at the same moment, on a copy of the demo shop: a publish (the publish file lock, then
the write lock for its commit), an event load (the write lock for the whole load), a rule-set save and a
sign-in (each a transaction). The locks are always taken in one order, so all four finish, each once, and
the audit chain stays whole."""

from __future__ import annotations

import pytest
from test_concurrency import together

from core import store
from core.data.ingest import ingest_events
from core.ranking.rule_sets import draft_with, load_rule_set, save_rule_set
from core.release import audit, auth, releases
from core.release.roles import SYSTEM, Account, Role
from tests.conftest import ACCOUNTS

EVENTS = 2_000


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("writers") / "log.csv"
    rows = [f"2024-05-01 10:{i // 60 % 60:02d}:{i % 60:02d},w{i % 50},x{i % 40},view" for i in range(EVENTS)]
    path.write_text("ts,user_id,item_id,event_type\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_a_publish_a_load_a_save_and_a_sign_in_at_once_all_finish_once(shop, log, round_):
    events_before = store.scalar("SELECT count(*) FROM events")
    current = load_rule_set()
    blocked = store.scalar("SELECT min(item_id) FROM items")
    release, loaded, saved, session = together(
        lambda: releases.publish(SYSTEM, "at once", expected_head=None),
        lambda: ingest_events(log, actor=SYSTEM),
        lambda: save_rule_set(
            draft_with(current, "block", item_id=blocked), current.version, Account("mia", Role.MERCHANDISER)
        ),
        lambda: auth.sign_in("mia", ACCOUNTS["mia"][1]),
    )
    assert release.release_id == 1
    assert loaded.loaded == EVENTS
    assert saved.version == current.version + 1
    assert auth.session_account(session.token).username == "mia"
    assert store.scalar("SELECT count(*) FROM events") == events_before + EVENTS
    assert store.scalar("SELECT count(*) FROM releases") == 1
    assert audit.verify() == []
    assert releases.check_consistency() == []
