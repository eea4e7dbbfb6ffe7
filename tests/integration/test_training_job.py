"""A training job started from the app runs in a child process as the account that started it: the child
signs in with the one-day token it was handed (never the parent's HS_USER/HS_PASSWORD) and the run is
recorded and audited in that account's name."""

import time

import pytest

from core import store
from core.jobs import read_job, start_training
from core.release import auth
from tests.conftest import ACCOUNTS, make_accounts
from tests.integration.test_model_runs import make_shop

pytestmark = pytest.mark.slow


def test_a_job_trains_as_the_admin_who_started_it(db, monkeypatch):
    make_shop()
    make_accounts({"ada": ACCOUNTS["ada"]})
    monkeypatch.setenv("HS_USER", "someone-else")  # the parent's own sign-in must not reach the child
    monkeypatch.setenv("HS_PASSWORD", "not-theirs")
    ada = auth.authenticate("ada", ACCOUNTS["ada"][1])
    job = start_training(actor=ada, epochs=1, time_budget_min=0.2)
    deadline = time.time() + 600
    while read_job(job.dir).result is None and time.time() < deadline:
        time.sleep(1)
    result = read_job(job.dir).result
    assert result is not None and result.get("ok"), result
    assert store.query("SELECT actor, action FROM audit_log WHERE action = 'train'").rows() == [
        ("ada", "train")
    ]
    # the child's sign-in ended with the job: no token is left in its folder, and the log says who signed out
    assert not (job.dir / "token").exists()
    assert store.query("SELECT actor FROM audit_log WHERE action = 'sign_out'").rows() == [("ada",)]
