"""Sign-in: local accounts with argon2id hashes, a per-account rate limit, sessions that expire, OIDC
identities mapped to accounts by e-mail, CLI sign-in, and the first run's one-time admin password.

Every outcome is audited: ``sign_in`` and ``sign_in_failed`` rows name the account and the surface
(app, oidc, cli, cli-token). A one-time password (the first run's, or one an admin set) signs in once,
and that session may do nothing but choose a new password.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core import store
from core.config import settings
from core.errors import InputError, RateLimited, SignInError
from core.release import audit
from core.release.audit import utcnow
from core.release.roles import SYSTEM, Account, Role

MAX_FAILURES = 5  # failed sign-ins in a row before the account is locked for a while
LOCK_S, MAX_LOCK_S = 30, 900  # the lock doubles with each further failure, up to 15 minutes
CACHE_S = 5.0  # a session is checked against the store at most this often per process
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
_hasher = PasswordHasher()  # argon2id with the package's current defaults (64 MiB, 3 passes)
_DUMMY_HASH = _hasher.hash("not a password")  # unknown accounts cost the same time as known ones


@dataclass(frozen=True)
class Session:
    token: str  # give it back to ``session_account``; only its hash is stored
    account: Account
    expires_at: datetime


def one_time_password() -> str:
    """Four groups of five characters (about 99 bits), easy to read off a terminal."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_new_password(password: str, username: str) -> None:
    """The rules for a chosen password; an InputError names the field and the fix."""
    if len(password) < 10:
        raise InputError("password: too short", fix="use at least 10 characters (a passphrase is fine)")
    if password.strip().lower() == username.lower() or len(set(password)) < 4:
        raise InputError("password: too easy to guess", fix="use a passphrase that is not your user name")


def check_username(name: str) -> str:
    name = name.strip().lower()
    if not USERNAME.match(name):
        raise InputError(
            f"user name '{name[:40]}' is not allowed",
            fix="2–32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _matches(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


# --- the rate limit -------------------------------------------------------------------------------
_unknown_lock = threading.Lock()
_unknown: dict[str, tuple[int, datetime | None]] = {}  # names with no account: (failures, locked until)


def _lock_for(failures: int) -> timedelta | None:
    if failures < MAX_FAILURES:
        return None
    return timedelta(seconds=min(MAX_LOCK_S, LOCK_S * 2 ** (failures - MAX_FAILURES)))


def user_row(con, name: str) -> dict | None:
    rows = con.execute(
        """SELECT username, role, email, password_hash, must_change, one_time_used, disabled,
                  failed_sign_ins, locked_until FROM app_users WHERE username = ?""",
        [name],
    ).fetchall()
    keys = ("username", "role", "email", "password_hash", "must_change", "one_time_used", "disabled")
    return dict(zip((*keys, "failed", "locked_until"), rows[0])) if rows else None


def _fail(name: str, surface: str, reason: str, known: bool, db_path) -> None:
    """Count a failed attempt (locking the account after MAX_FAILURES in a row), audit it, raise."""
    now = utcnow()
    after = {"surface": surface, "reason": reason}

    def count(con) -> timedelta | None:
        failures = con.execute(
            "SELECT failed_sign_ins + 1 FROM app_users WHERE username = ?", [name]
        ).fetchall()[0][0]
        lock = _lock_for(failures)
        con.execute(
            "UPDATE app_users SET failed_sign_ins = ?, locked_until = ? WHERE username = ?",
            [failures, now + lock if lock else None, name],
        )
        audit.append(con, name, "sign_in_failed", name, after=after)
        return lock

    if known:
        lock = audit.write(count, db_path)
    else:  # no row to count in: remember the name in this process, so guessing names is slowed too
        with _unknown_lock:
            failures = _unknown.get(name, (0, None))[0] + 1
            lock = _lock_for(failures)
            if len(_unknown) > 10_000:
                _unknown.clear()
            _unknown[name] = (failures, now + lock if lock else None)
        audit.record(name, "sign_in_failed", name, after=after, db_path=db_path)
    if lock:
        raise RateLimited(
            f"too many failed sign-ins for '{name}': try again in {lock.total_seconds():.0f} s",
            lock.total_seconds(),
        )
    raise SignInError("wrong user name or password")


def _refuse_if_locked(name: str, row: dict | None, surface: str, db_path) -> None:
    now = utcnow()
    with _unknown_lock:
        until = row["locked_until"] if row else _unknown.get(name, (0, None))[1]
    if until is not None and until > now:
        wait = (until - now).total_seconds()
        audit.record(
            name, "sign_in_failed", name, after={"surface": surface, "reason": "locked"}, db_path=db_path
        )
        raise RateLimited(f"too many failed sign-ins for '{name}': try again in {wait:.0f} s", wait)


# --- sign-in --------------------------------------------------------------------------------------
def _succeed(name: str, surface: str, session_kind: str | None, db_path) -> Session | Account:
    """Reset the failure count, spend a one-time password, open a session (or not), audit."""
    now, cfg = utcnow(), settings()
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(hours=cfg.session_hours)

    def work(con):
        row = user_row(con, name)
        if row["must_change"] and row["one_time_used"]:  # spent by a concurrent sign-in a moment ago
            raise SignInError(_spent_message(name))
        con.execute(
            """UPDATE app_users SET failed_sign_ins = 0, locked_until = NULL, last_sign_in = ?,
                   one_time_used = must_change WHERE username = ?""",
            [now, name],
        )
        if session_kind:
            con.execute(
                "INSERT INTO app_sessions VALUES (?, ?, ?, ?, ?, ?, NULL)",
                [_token_hash(token), name, session_kind, now, expires, now],
            )
        audit.append(con, name, "sign_in", name, after={"surface": surface})
        return Account(name, Role.parse(row["role"]), row["email"], bool(row["must_change"]))

    account = audit.write(work, db_path)
    return Session(token, account, expires) if session_kind else account


def _spent_message(name: str) -> str:
    where = (
        "run `python -m core first-run` for a new one" if name == "admin" else "ask an admin for a new one"
    )
    return f"the one-time password of '{name}' was already used: {where}"


def authenticate(
    username: str, password: str, surface: str = "app", allow_one_time: bool = False, db_path=None
) -> Account:
    """Check a user name and password (rate-limited, audited) without opening a session (the CLI).
    A one-time password is refused, and not spent, unless ``allow_one_time`` (changing the password)."""
    return _check(username, password, surface, None, db_path, allow_one_time)


def sign_in(username: str, password: str, surface: str = "app", db_path=None) -> Session:
    """Check a user name and password and open a browser session."""
    return _check(username, password, surface, "browser", db_path)


def _check(
    username: str, password: str, surface: str, session_kind: str | None, db_path, allow_one_time=True
):
    name = str(username or "").strip().lower()[:64]
    with store.connect(db_path) as con:
        row = user_row(con, name)
    _refuse_if_locked(name, row, surface, db_path)
    if not _matches(row["password_hash"] if row else None, str(password or "")):
        _fail(name, surface, "wrong password" if row else "no such account", row is not None, db_path)
    refusal = None
    if row["disabled"]:
        refusal = (f"the account '{name}' is disabled: ask an admin", "account disabled")
    elif row["must_change"] and row["one_time_used"]:
        refusal = (_spent_message(name), "one-time password already used")
    elif row["must_change"] and not allow_one_time:
        how = "`python -m core users passwd` (or sign in to the app)"
        refusal = (f"{name} has a one-time password: choose your own first with {how}", "one-time password")
    if refusal:
        audit.record(
            name, "sign_in_failed", name, after={"surface": surface, "reason": refusal[1]}, db_path=db_path
        )
        raise SignInError(refusal[0])
    return _succeed(name, surface, session_kind, db_path)


def oidc_sign_in(email: str, verified: bool | None = True, db_path=None) -> Session:
    """Map an identity from the OIDC provider (``st.user``) to the account with that e-mail."""
    address = str(email or "").strip().lower()
    with store.connect(db_path) as con:
        rows = con.execute(
            "SELECT username FROM app_users WHERE lower(email) = ? AND NOT disabled", [address]
        ).fetchall()
    if not address or verified is False or not rows:
        reason = "e-mail not verified" if verified is False else "no account with this e-mail"
        audit.record(
            address or "?", "sign_in_failed", address or "?", after={"surface": "oidc", "reason": reason}
        )
        raise SignInError(
            f"{address or 'this identity'} has no account in Homepage Studio ({reason}): "
            "ask an admin to add your e-mail on the Users page"
        )
    return _succeed(rows[0][0], "oidc", "oidc", db_path)


# --- sessions -------------------------------------------------------------------------------------
_cache_lock = threading.Lock()
_cache: dict[str, tuple[Account, float]] = {}  # token hash → (account, when checked)


def forget_cached_sessions() -> None:
    """Check every session against the store again (after a role change, a sign-out, a new password)."""
    with _cache_lock:
        _cache.clear()


def session_account(token: str, db_path=None) -> Account:
    """The account of a live session, or SignInError saying why it ended (signed out, expired, idle)."""
    key = _token_hash(str(token))
    with _cache_lock:
        hit = _cache.get(key)
    if hit and time.monotonic() - hit[1] < CACHE_S:
        return hit[0]
    cfg, now = settings(), utcnow()
    with store.connect(db_path) as con:
        rows = con.execute(
            """SELECT s.username, s.kind, s.expires_at, s.last_seen, s.ended_at, u.role, u.email,
                      u.must_change, u.disabled
               FROM app_sessions s JOIN app_users u USING (username) WHERE s.token_hash = ?""",
            [key],
        ).fetchall()
        if not rows or rows[0][4] is not None:
            raise SignInError("you are signed out: sign in again")
        name, kind, expires, last_seen, _, role, email, must_change, disabled = rows[0]
        idle = timedelta(minutes=cfg.session_idle_min)
        if disabled:
            raise SignInError(f"the account '{name}' is disabled: ask an admin")
        if expires <= now:
            raise SignInError(f"your session ended after {cfg.session_hours:g} hours: sign in again")
        if kind != "token" and last_seen + idle <= now:
            raise SignInError(
                f"you were signed out after {cfg.session_idle_min:g} idle minutes: sign in again"
            )
        if (
            now - last_seen
        ).total_seconds() > 60:  # best effort, no write lock: an ingest holds that for minutes
            _touch(con, key, now)
    account = Account(name, Role.parse(role), email, bool(must_change) and kind == "browser")
    with _cache_lock:
        _cache[key] = (account, time.monotonic())
    return account


def _touch(con, key: str, now: datetime) -> None:
    """Mark the session seen. Two reruns of one browser session can check it at the same moment, and
    DuckDB then refuses the second update: the first one's time serves both, so that is not an error."""
    try:
        con.execute("UPDATE app_sessions SET last_seen = ? WHERE token_hash = ?", [now, key])
    except duckdb.TransactionException:
        pass


def sign_out(token: str, db_path=None) -> None:
    key = _token_hash(str(token))

    def work(con):
        rows = con.execute(
            "SELECT username FROM app_sessions WHERE token_hash = ? AND ended_at IS NULL", [key]
        ).fetchall()
        if rows:
            con.execute("UPDATE app_sessions SET ended_at = ? WHERE token_hash = ?", [utcnow(), key])
            audit.append(con, rows[0][0], "sign_out", rows[0][0])

    audit.write(work, db_path)
    forget_cached_sessions()


def change_password(
    account: Account,
    new_password: str,
    current_password: str | None = None,
    keep_token: str | None = None,
    db_path=None,
) -> Account:
    """Set a new password. A one-time-password session needs no current password; otherwise it is checked.
    Every other session of the account ends (``keep_token``: the one in use)."""
    check_new_password(new_password, account.username)
    if not account.must_change_password:
        with store.connect(db_path) as con:
            row = user_row(con, account.username)
        if row is None or not _matches(row["password_hash"], str(current_password or "")):
            raise SignInError("the current password is wrong")
    digest = hash_password(new_password)
    keep = _token_hash(keep_token) if keep_token else ""

    def work(con):
        con.execute(
            """UPDATE app_users SET password_hash = ?, must_change = FALSE, one_time_used = FALSE,
                   failed_sign_ins = 0, locked_until = NULL WHERE username = ?""",
            [digest, account.username],
        )
        con.execute(
            "UPDATE app_sessions SET ended_at = ? WHERE username = ? AND ended_at IS NULL AND token_hash <> ?",
            [utcnow(), account.username, keep],
        )
        audit.append(con, account, "change_password", account.username)

    audit.write(work, db_path)
    forget_cached_sessions()
    return Account(account.username, account.role, account.email, False)


# --- the first run and the CLI --------------------------------------------------------------------
def create_token(account: Account, days: float = 30, db_path=None) -> str:
    """A token for scripts (``HS_TOKEN_FILE``): signs in as ``account`` until it expires."""
    if account.must_change_password:
        raise SignInError(f"{account.username}: change your one-time password before making a token")
    token, now = secrets.token_urlsafe(32), utcnow()

    def work(con):
        con.execute(
            "INSERT INTO app_sessions VALUES (?, ?, 'token', ?, ?, ?, NULL)",
            [_token_hash(token), account.username, now, now + timedelta(days=days), now],
        )
        audit.append(con, account, "create_token", account.username, after={"days": days})

    audit.write(work, db_path)
    return token


def cli_account(allow_one_time: bool = False, db_path=None) -> Account:
    """The account a CLI command runs as: ``HS_USER`` with ``HS_PASSWORD`` or ``HS_TOKEN_FILE``
    (``allow_one_time``: for the command that replaces a one-time password)."""
    cfg = settings()
    if not cfg.user:
        raise SignInError("set HS_USER to your account name, and HS_PASSWORD or HS_TOKEN_FILE")
    if cfg.token_file:
        path = Path(cfg.token_file).expanduser()
        if path.stat().st_mode & 0o077:
            raise SignInError(f"{path}: a token file must be readable by you only — run chmod 600 {path}")
        account = session_account(path.read_text().strip(), db_path)
        if account.username != cfg.user.strip().lower():
            raise SignInError(f"{path} is a token of '{account.username}', not of HS_USER={cfg.user}")
        audit.record(account, "sign_in", account.username, after={"surface": "cli-token"}, db_path=db_path)
        return account
    if not cfg.password:
        raise SignInError(f"set HS_PASSWORD (or HS_TOKEN_FILE) for HS_USER={cfg.user}")
    return authenticate(cfg.user, cfg.password, "cli", allow_one_time, db_path)


def cli_actor(db_path=None) -> Account:
    """Who a data-changing CLI command (ingest, train, activate, demo) runs as. While the store has no
    account yet (a fresh shop being set up at the shell, before ``first-run`` creates the admin) there is
    nobody to check against, so it is the system, and the audit log says so; from the first account on it
    is ``cli_account()``: HS_USER and their password or token."""
    if not store.scalar("SELECT count(*) FROM app_users", db_path=db_path):
        return SYSTEM
    return cli_account(db_path=db_path)
