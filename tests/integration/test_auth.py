"""Sign-in on a real store: one-time passwords, the rate limit, sessions that end, OIDC mapping, tokens."""

from datetime import timedelta

import pytest

from core import store
from core.errors import InputError, PermissionDenied, RateLimited, SignInError
from core.release import auth, users
from core.release.audit import utcnow
from core.release.roles import SYSTEM, Permission, require

PASSWORD = "a-long-passphrase-1"


@pytest.fixture
def clock(monkeypatch):
    """Move sign-in's clock forward: ``clock(seconds)``."""
    shift = timedelta()

    def advance(seconds: float) -> None:
        nonlocal shift
        shift += timedelta(seconds=seconds)
        auth.forget_cached_sessions()

    monkeypatch.setattr(auth, "utcnow", lambda: utcnow() + shift)
    return advance


def account_with_password(name: str, role: str, email: str | None = None) -> auth.Account:
    session = auth.sign_in(name, users.create_user(SYSTEM, name, role, email))
    return auth.change_password(session.account, PASSWORD, keep_token=session.token)


def audit_rows(action: str) -> int:
    return store.scalar("SELECT count(*) FROM audit_log WHERE action = ?", [action])


def test_first_run_password_works_once_and_must_be_changed(db):
    one_time = users.bootstrap_admin()
    session = auth.sign_in("admin", one_time)
    assert session.account.must_change_password
    with pytest.raises(PermissionDenied, match="change your one-time password"):
        require(session.account, Permission.VIEW)
    with pytest.raises(SignInError, match="already used"):
        auth.sign_in("admin", one_time)
    admin = auth.change_password(session.account, PASSWORD, keep_token=session.token)
    assert require(admin, Permission.MANAGE_USERS) is admin
    assert auth.sign_in("admin", PASSWORD).account.username == "admin"
    with pytest.raises(SignInError):
        auth.sign_in("admin", one_time)
    assert users.bootstrap_admin() is None  # the admin chose a password: nothing more to print


def test_a_new_first_run_replaces_an_unused_one_time_password(db):
    first = users.bootstrap_admin()
    second = users.bootstrap_admin()
    with pytest.raises(SignInError, match="wrong user name or password"):
        auth.sign_in("admin", first)
    assert auth.sign_in("admin", second).account.must_change_password


def test_a_one_time_password_does_not_open_the_cli_except_to_change_it(db):
    one_time = users.bootstrap_admin()
    with pytest.raises(SignInError, match="users passwd"):
        auth.authenticate("admin", one_time, "cli")
    assert auth.authenticate("admin", one_time, "cli", allow_one_time=True).must_change_password


def test_wrong_passwords_are_rate_limited_per_account(db, clock):
    account_with_password("mia", "merchandiser")
    for _ in range(auth.MAX_FAILURES - 1):
        with pytest.raises(SignInError, match="wrong user name or password"):
            auth.sign_in("mia", "guess-guess-guess")
    with pytest.raises(RateLimited, match="try again in 30 s"):
        auth.sign_in("mia", "guess-guess-guess")
    with pytest.raises(RateLimited):
        auth.sign_in("mia", PASSWORD)  # even the right password waits out the lock
    account_with_password("vic", "viewer")  # another account is not slowed down
    assert auth.sign_in("vic", PASSWORD).account.username == "vic"
    clock(31)
    assert auth.sign_in("mia", PASSWORD).account.username == "mia"
    assert audit_rows("sign_in_failed") == auth.MAX_FAILURES + 1


def test_the_lock_doubles_with_each_further_failure(db, clock):
    account_with_password("mia", "merchandiser")
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(SignInError):
            auth.sign_in("mia", "guess-guess-guess")
    clock(31)
    with pytest.raises(RateLimited, match="try again in 60 s"):
        auth.sign_in("mia", "guess-guess-guess")


def test_unknown_names_are_rate_limited_too(db):
    for _ in range(auth.MAX_FAILURES - 1):
        with pytest.raises(SignInError, match="wrong user name or password"):
            auth.sign_in("nobody-here", "guess-guess-guess")
    with pytest.raises(RateLimited):
        auth.sign_in("nobody-here", "guess-guess-guess")


def test_a_session_ends_after_its_hours(db, clock, monkeypatch):
    monkeypatch.setenv("HS_SESSION_HOURS", "2")
    account_with_password("mia", "merchandiser")
    token = auth.sign_in("mia", PASSWORD).token
    assert auth.session_account(token).username == "mia"
    for _ in range(4):  # active all along (100 minutes): only the absolute limit ends it
        clock(25 * 60)
        auth.session_account(token)
    clock(25 * 60)
    with pytest.raises(SignInError, match="ended after 2 hours"):
        auth.session_account(token)


def test_an_idle_session_ends(db, clock, monkeypatch):
    monkeypatch.setenv("HS_SESSION_IDLE_MIN", "30")
    account_with_password("mia", "merchandiser")
    token = auth.sign_in("mia", PASSWORD).token
    clock(31 * 60)
    with pytest.raises(SignInError, match="30 idle minutes"):
        auth.session_account(token)


def test_sign_out_ends_the_session(db):
    account_with_password("mia", "merchandiser")
    token = auth.sign_in("mia", PASSWORD).token
    auth.sign_out(token)
    with pytest.raises(SignInError, match="signed out"):
        auth.session_account(token)


def test_a_demoted_account_loses_its_rights_at_once(db):
    admin = account_with_password("ada", "admin")
    mia = account_with_password("mia", "merchandiser")
    token = auth.sign_in("mia", PASSWORD).token
    users.set_role(admin, "mia", "viewer")
    assert not auth.session_account(token).may(Permission.PUBLISH)
    with store.connect() as con, pytest.raises(PermissionDenied, match="viewer"):
        require(mia, Permission.PUBLISH, con)  # the account object from before the change is re-read


def test_a_disabled_account_cannot_sign_in_and_its_sessions_end(db):
    admin = account_with_password("ada", "admin")
    account_with_password("mia", "merchandiser")
    token = auth.sign_in("mia", PASSWORD).token
    users.set_disabled(admin, "mia", True)
    with pytest.raises(SignInError):
        auth.session_account(token)
    with pytest.raises(SignInError, match="disabled"):
        auth.sign_in("mia", PASSWORD)


def test_the_last_admin_stays_an_admin(db):
    admin = account_with_password("ada", "admin")
    with pytest.raises(InputError, match="last admin"):
        users.set_role(admin, "ada", "viewer")


def test_a_short_password_is_refused_with_the_rule(db):
    one_time = users.bootstrap_admin()
    session = auth.sign_in("admin", one_time)
    with pytest.raises(InputError, match="at least 10 characters"):
        auth.change_password(session.account, "short")


def test_oidc_maps_an_email_to_its_account(db):
    account_with_password("mia", "merchandiser", email="Mia@Example.com")
    session = auth.oidc_sign_in("mia@example.com", verified=True)
    assert (session.account.username, session.account.role.key) == ("mia", "merchandiser")
    assert auth.session_account(session.token).username == "mia"


def test_oidc_refuses_an_unknown_or_unverified_email(db):
    account_with_password("mia", "merchandiser", email="mia@example.com")
    with pytest.raises(SignInError, match="ask an admin"):
        auth.oidc_sign_in("stranger@example.com")
    with pytest.raises(SignInError, match="not verified"):
        auth.oidc_sign_in("mia@example.com", verified=False)
    assert audit_rows("sign_in_failed") == 2


def test_a_token_file_signs_the_cli_in(db, tmp_path, monkeypatch):
    mia = account_with_password("mia", "merchandiser")
    path = tmp_path / "token"
    path.write_text(auth.create_token(mia, days=1))
    path.chmod(0o600)
    monkeypatch.setenv("HS_USER", "mia")
    monkeypatch.setenv("HS_TOKEN_FILE", str(path))
    assert auth.cli_account().username == "mia"
    path.chmod(0o644)
    with pytest.raises(SignInError, match="chmod 600"):
        auth.cli_account()


def test_one_session_checked_by_many_reruns_at_once_stays_signed_in(db):
    """Streamlit can run two reruns of one browser session at the same moment: both touch last_seen."""
    import threading

    account_with_password("mia", "merchandiser")
    token = auth.sign_in("mia", PASSWORD).token
    for _ in range(10):
        with store.transaction() as con:  # seen long ago: every check below wants to touch it
            con.execute("UPDATE app_sessions SET last_seen = last_seen - INTERVAL 10 MINUTE")
        auth.forget_cached_sessions()
        start, errors = threading.Barrier(8), []

        def check(start=start, errors=errors):
            start.wait()
            try:
                assert auth.session_account(token).username == "mia"
            except Exception as exc:  # noqa: BLE001 (the failure is the assertion below)
                errors.append(exc)

        threads = [threading.Thread(target=check) for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert errors == []


def test_a_training_jobs_token_is_revoked_when_the_job_ends(db, tmp_path, monkeypatch):
    from core.jobs import JobLog

    mia = account_with_password("mia", "merchandiser")
    for ok in (True, False):
        job_dir = tmp_path / f"job-{ok}"
        job_dir.mkdir()
        token = auth.create_token(mia, days=1)
        (job_dir / "token").write_text(token)
        assert auth.session_account(token).username == "mia"
        before = audit_rows("sign_out")
        JobLog(job_dir).finish(ok, "done" if ok else "failed")
        assert not (job_dir / "token").exists()
        assert (job_dir / "result.json").exists()
        auth.forget_cached_sessions()
        with pytest.raises(SignInError):
            auth.session_account(token)
        assert audit_rows("sign_out") == before + 1
