import os
import sys
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def db(tmp_path, monkeypatch):
    """A fresh, empty, migrated database in a temporary folder; returns its path."""
    monkeypatch.setenv("HS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HS_DB", str(tmp_path / "data" / "shop.duckdb"))
    from core import store

    path = tmp_path / "data" / "shop.duckdb"
    with store.connect(path):
        pass
    return path


# accounts of the shared demo shop, their own passwords already chosen: name → (role, password)
ACCOUNTS = {
    "ada": ("admin", "ada-long-passphrase-1"),
    "pam": ("product_manager", "pam-long-passphrase-1"),
    "mia": ("merchandiser", "mia-long-passphrase-1"),
    "vic": ("viewer", "vic-long-passphrase-1"),
}


@contextmanager
def using_data(data: Path):
    """Point ``HS_DATA``/``HS_DB`` at a data folder for the block (session fixtures cannot monkeypatch)."""
    old = {k: os.environ.get(k) for k in ("HS_DATA", "HS_DB")}
    os.environ["HS_DATA"] = str(data)
    os.environ["HS_DB"] = str(data / "shop.duckdb")
    try:
        yield data
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stored_account(name: str, role: str = "merchandiser"):
    """An account of ``role`` in the store the test points at (created once), as core functions take it."""
    from core import store
    from core.release import users
    from core.release.roles import SYSTEM, Account, Role

    if not store.scalar("SELECT count(*) FROM app_users WHERE username = ?", [name]):
        users.create_user(SYSTEM, name, role)
    return Account(name, Role.parse(role))


def make_accounts(accounts: dict[str, tuple[str, str]]) -> None:
    """Create accounts the way people get them: an admin's one-time password, then their own."""
    from core.release import auth, users
    from core.release.roles import SYSTEM

    for name, (role, password) in accounts.items():
        session = auth.sign_in(name, users.create_user(SYSTEM, name, role))
        auth.change_password(session.account, password, keep_token=session.token)


def page_signed_in_as(page: str, name: str, **state):
    """An AppTest of ``pages/<page>.py`` on the current store, signed in as ``ACCOUNTS[name]`` (created first, as
    ``make_accounts`` does), with extra session state; not run yet."""
    from streamlit.testing.v1 import AppTest

    from core.release import auth

    make_accounts({name: ACCOUNTS[name]})
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=120)
    at.session_state["session_token"] = auth.sign_in(name, ACCOUNTS[name][1]).token
    for key, value in state.items():
        at.session_state[key] = value
    return at


def copy_shop(source: Path, target: Path) -> Path:
    """A consistent copy of a shop's database into a new data folder; model runs stay where they are (their
    rows name their folders). Copied through a plain in-memory DuckDB connection of the test's own, not a
    store connection: the store's instances are locked down and may ATTACH nothing outside the folders the
    product loads files from (docs/SECURITY.md). The source is attached read-only, so no other process (or
    unit of work of this one) may be writing it meanwhile — a fixture copies before its test starts."""
    from core.sql import lit

    target.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {lit(source / 'shop.duckdb')} AS shop (READ_ONLY)")
        con.execute(f"ATTACH {lit(target / 'shop.duckdb')} AS copy")
        con.execute("COPY FROM DATABASE shop TO copy")
    finally:
        con.close()
    return target


@pytest.fixture(scope="session")
def demo_shop(tmp_path_factory):
    """A small demo shop with a trained, active model and the ``ACCOUNTS``: shared by the page and e2e tests.

    Returns the data folder; tests that use it point ``HS_DATA``/``HS_DB`` at it (see ``use_demo``)."""
    data = tmp_path_factory.mktemp("demo") / "data"
    with using_data(data):
        from core.data.demo import build_demo_shop
        from core.model_runs import train_run
        from core.release.roles import SYSTEM
        from models.lstm import LSTMConfig

        build_demo_shop(users=600, items=300, days=20, seed=3, actor=SYSTEM)
        train_run(actor=SYSTEM, time_budget_s=25, config=LSTMConfig(dim=32, max_epochs=3), activate=True)
        make_accounts(ACCOUNTS)
    return data


@pytest.fixture
def use_demo(demo_shop, monkeypatch):
    monkeypatch.setenv("HS_DATA", str(demo_shop))
    monkeypatch.setenv("HS_DB", str(demo_shop / "shop.duckdb"))
    return demo_shop


@pytest.fixture
def session_of(use_demo):
    """Sign an account of ``ACCOUNTS`` in to the demo shop: name → session token (for ``st.session_state``)."""
    from core.release import auth

    return lambda name: auth.sign_in(name, ACCOUNTS[name][1]).token
