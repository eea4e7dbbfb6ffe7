"""A viewer calling the core functions directly gets a permission error (the pages hide them too, but
this is the check that counts). Nothing is written."""

import pytest

from core import store
from core.errors import PermissionDenied
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
}


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
    counts = store.query(
        "SELECT (SELECT count(*) FROM releases) r, (SELECT count(*) FROM app_users) u"
    ).rows()
    with pytest.raises(PermissionDenied, match="viewer"):
        CALLS[call](vic)
    assert (
        store.query("SELECT (SELECT count(*) FROM releases) r, (SELECT count(*) FROM app_users) u").rows()
        == counts
    )


def test_a_forged_account_object_is_refused_inside_the_transaction(vic):
    from core.release.roles import Account, Role

    forged = Account("vic", Role.ADMIN)  # made by hand: the store says vic is a viewer
    with pytest.raises(PermissionDenied, match="viewer"):
        users.create_user(forged, "friend", "admin")
