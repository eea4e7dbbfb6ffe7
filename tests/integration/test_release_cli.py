"""The publishing commands as a shell user runs them, signed in through HS_USER / HS_PASSWORD."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ACCOUNTS, ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(shop):
    def run(*args: str, user: str | None = None, password: str | None = None, stdin: str | None = None):
        env = os.environ | {"HS_DATA": str(shop), "HS_DB": str(shop / "shop.duckdb")}
        env = {k: v for k, v in env.items() if k not in ("HS_USER", "HS_PASSWORD", "HS_TOKEN_FILE")}
        if user:
            env |= {"HS_USER": user, "HS_PASSWORD": password or ACCOUNTS[user][1]}
        return subprocess.run(
            [sys.executable, "-m", "core", *args],
            cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    return run


def one_sentence(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_first_run_password_then_publish_rollback_and_the_log(cli):
    first = cli("first-run")
    assert first.returncode == 0, first.stderr
    assert "publishing release 1" in first.stdout
    one_time = re.search(r"one-time password\s+(\S+)", first.stdout).group(1)
    assert "users passwd" in one_sentence(cli("releases", user="admin", password=one_time))
    changed = cli("users", "passwd", user="admin", password=one_time, stdin="admin-own-passphrase\n")
    assert changed.returncode == 0, changed.stderr

    published = cli("publish", "--note", "from the shell", user="mia")
    assert published.returncode == 0, published.stderr
    assert "release 2 is live" in published.stdout
    back = cli("rollback", "1", user="mia")
    assert back.returncode == 0, back.stderr
    listing = cli("releases", "--check", user="vic")
    assert re.search(r"│ 3\s+┆ rollback\s+┆ live", listing.stdout), listing.stdout
    assert "database and artifacts agree" in listing.stdout

    log = cli(
        "audit-log",
        "--action",
        "publish",
        "rollback",
        "--json",
        user="admin",
        password="admin-own-passphrase",
    )
    rows = json.loads(log.stdout)
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("mia", "rollback", "release 3"), ("mia", "publish", "release 2"), ("system", "publish", "release 1"),
    ]  # fmt: skip
    assert cli("audit-log", "--verify", user="mia").returncode == 0


def test_refusals_are_one_sentence_and_exit_2(cli):
    assert "may not publish" in one_sentence(cli("publish", "--note", "mine", user="vic"))
    assert one_sentence(cli("publish", "--note", "mine", user="mia", password="wrong")) == (
        "error: wrong user name or password"
    )
    assert "set HS_USER" in one_sentence(cli("releases"))
    assert "a release needs a note" in one_sentence(cli("publish", "--note", " ", user="mia"))


def test_forget_user_says_what_it_removed_and_that_models_are_not_retrained(cli, shop):
    from core import store

    shopper = store.scalar("SELECT min(user_id) FROM events")
    result = cli("forget-user", shopper, user="ada")
    assert result.returncode == 0, result.stderr
    assert re.search(r"removed [1-9][\d,]* events", result.stdout)
    assert "trained models are not retrained" in result.stdout
