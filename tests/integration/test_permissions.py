"""A viewer calling the core functions directly gets a permission error (the pages hide them too, but
this is the check that counts). Nothing is written."""

from pathlib import Path

import pytest

from core import store
from core.data.demo import build_demo_shop
from core.data.ingest import ingest_catalog, ingest_events
from core.errors import PermissionDenied
from core.jobs import start_training
from core.model_runs import activate_run, train_run
from core.ranking.rule_sets import draft_with, load_rule_set, save_rule_set
from core.release import audit, auth, privacy, releases, users
from tests.conftest import ACCOUNTS, make_accounts, using_data

CALLS = {
    "publish": lambda vic: releases.publish(vic, "mine", expected_head=1),
    "rollback": lambda vic: releases.rollback(vic, 1, "mine", expected_head=1),
    "cancel a schedule": lambda vic: releases.cancel_scheduled(vic, 1, "mine"),
    "create a user": lambda vic: users.create_user(vic, "friend", "admin"),
    "change a role": lambda vic: users.set_role(vic, "vic", "admin"),
    "reset a password": lambda vic: users.reset_password(vic, "ada"),
    "disable a user": lambda vic: users.set_disabled(vic, "ada", True),
    "list users": lambda vic: users.list_users(vic),
    "forget a shopper": lambda vic: privacy.forget_user(vic, "u1"),
    "read the audit log": lambda vic: audit.query(vic),
    "save a rule set": lambda vic: save_rule_set(draft_with(load_rule_set(), "block", item_id="i1"), 0, vic),
    "train a model": lambda vic: train_run(actor=vic, epochs=1),
    "start a training job": lambda vic: start_training(actor=vic, epochs=1),
    "activate a model run": lambda vic: activate_run("any-run", vic),
    "ingest events": lambda vic: ingest_events(LOG, actor=vic),
    "ingest a catalog": lambda vic: ingest_catalog(LOG, "items", actor=vic),
    "build the demo shop": lambda vic: build_demo_shop(users=20, items=10, days=2, actor=vic),
}


WRITTEN = """SELECT (SELECT count(*) FROM releases), (SELECT count(*) FROM app_users),
    (SELECT count(*) FROM rule_sets), (SELECT count(*) FROM model_runs), (SELECT count(*) FROM app_sessions),
    (SELECT count(*) FROM events), (SELECT count(*) FROM items), (SELECT count(*) FROM ingests)"""
LOG = Path(__file__).parent / "a_log_a_viewer_cannot_load.csv"  # never read: the check comes first


@pytest.fixture(scope="module")
def accounts_store(tmp_path_factory):
    """An empty store with an admin and a viewer (the permission checks come before any other)."""
    data = tmp_path_factory.mktemp("permissions") / "data"
    with using_data(data):
        make_accounts({name: ACCOUNTS[name] for name in ("ada", "vic")})
    return data


@pytest.fixture
def vic(accounts_store, monkeypatch):
    monkeypatch.setenv("HS_DATA", str(accounts_store))
    monkeypatch.setenv("HS_DB", str(accounts_store / "shop.duckdb"))
    return auth.authenticate("vic", ACCOUNTS["vic"][1])


@pytest.mark.parametrize("call", list(CALLS))
def test_a_viewer_is_refused(vic, call):
    counts = store.query(WRITTEN).rows()
    with pytest.raises(PermissionDenied, match="viewer"):
        CALLS[call](vic)
    assert store.query(WRITTEN).rows() == counts


def test_a_forged_account_object_is_refused_inside_the_transaction(vic):
    from core.release.roles import Account, Role

    forged = Account("vic", Role.ADMIN)  # made by hand: the store says vic is a viewer
    with pytest.raises(PermissionDenied, match="viewer"):
        users.create_user(forged, "friend", "admin")


def test_a_refused_training_job_starts_no_process(vic, tmp_path):
    from core.jobs import list_jobs

    before = len(list_jobs(limit=1000))
    with pytest.raises(PermissionDenied, match="viewer"):
        start_training(actor=vic, epochs=1)
    assert len(list_jobs(limit=1000)) == before


def test_the_cli_runs_as_the_system_only_before_the_first_account(tmp_path, monkeypatch):
    """A fresh store (set up at the shell) has nobody to check against; from the first account on, the CLI
    signs in as HS_USER."""
    from core.errors import SignInError
    from core.release.roles import SYSTEM

    monkeypatch.setenv("HS_DATA", str(tmp_path))
    monkeypatch.setenv("HS_DB", str(tmp_path / "shop.duckdb"))
    monkeypatch.delenv("HS_USER", raising=False)
    assert auth.cli_actor() is SYSTEM
    make_accounts({"vic": ACCOUNTS["vic"]})
    with pytest.raises(SignInError, match="HS_USER"):
        auth.cli_actor()
    monkeypatch.setenv("HS_USER", "vic")
    monkeypatch.setenv("HS_PASSWORD", ACCOUNTS["vic"][1])
    assert auth.cli_actor().username == "vic"
