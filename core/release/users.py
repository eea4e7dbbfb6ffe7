"""Account administration (admin only): create, change role, reset a password, disable; the first run's
admin account. Every change is audited with the state before and after; a one-time password is
returned once, to be handed over, and must be replaced at the first sign-in."""

from __future__ import annotations

import re

import polars as pl

from core import store
from core.errors import InputError, NotFoundError
from core.release import audit
from core.release.audit import utcnow
from core.release.auth import (
    check_username,
    forget_cached_sessions,
    hash_password,
    one_time_password,
    user_row,
)
from core.release.roles import SYSTEM, Account, Permission, Role, require

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(email: str | None) -> str | None:
    email = (email or "").strip().lower() or None
    if email and (len(email) > 254 or not EMAIL.match(email)):
        raise InputError(
            f"e-mail '{email[:60]}' is not an address", fix="use name@example.com, or leave it empty"
        )
    return email


def _existing(con, name: str) -> dict:
    row = user_row(con, name)
    if row is None:
        raise NotFoundError(f"no account '{name}' — see the Users page or `python -m core users list`")
    return row


def _keep_an_admin(con, name: str) -> None:
    others = con.execute(
        "SELECT count(*) FROM app_users WHERE role = 'admin' AND NOT disabled AND username <> ?", [name]
    ).fetchall()[0][0]
    if not others:
        raise InputError(f"'{name}' is the last admin", fix="make another account admin first")


def _end_sessions(con, name: str) -> None:
    con.execute(
        "UPDATE app_sessions SET ended_at = ? WHERE username = ? AND ended_at IS NULL", [utcnow(), name]
    )


def list_users(actor: Account, db_path=None) -> pl.DataFrame:
    require(actor, Permission.MANAGE_USERS)
    return store.query(
        """SELECT username, role, email, disabled, must_change AS one_time_password, last_sign_in,
                  failed_sign_ins, locked_until, created_at, created_by
           FROM app_users ORDER BY username""",
        db_path=db_path,
    )


def create_user(
    actor: Account, username: str, role: str | Role, email: str | None = None, db_path=None
) -> str:
    """Create an account; returns its one-time password (shown once, changed at the first sign-in)."""
    require(actor, Permission.MANAGE_USERS)
    name, role, email = check_username(username), Role.parse(role), _email(email)
    password = one_time_password()
    digest = hash_password(password)

    def work(con):
        require(actor, Permission.MANAGE_USERS, con)
        if user_row(con, name):
            raise InputError(f"user name '{name}' is taken", fix="pick another name")
        if email and con.execute("SELECT 1 FROM app_users WHERE email = ?", [email]).fetchall():
            raise InputError(f"e-mail {email} already belongs to another account", fix="use another address")
        con.execute(
            """INSERT INTO app_users (username, email, role, password_hash, must_change, created_at, created_by)
               VALUES (?, ?, ?, ?, TRUE, ?, ?)""",
            [name, email, role.key, digest, utcnow(), actor.username],
        )
        audit.append(con, actor, "create_user", name, after={"role": role.key, "email": email})

    audit.write(work, db_path)
    return password


def set_role(actor: Account, username: str, role: str | Role, db_path=None) -> None:
    require(actor, Permission.MANAGE_USERS)
    name, role = check_username(username), Role.parse(role)

    def work(con):
        require(actor, Permission.MANAGE_USERS, con)
        row = _existing(con, name)
        if row["role"] == "admin" and role != Role.ADMIN:
            _keep_an_admin(con, name)
        con.execute("UPDATE app_users SET role = ? WHERE username = ?", [role.key, name])
        audit.append(con, actor, "change_role", name, before={"role": row["role"]}, after={"role": role.key})

    audit.write(work, db_path)
    forget_cached_sessions()


def reset_password(actor: Account, username: str, db_path=None) -> str:
    """A new one-time password for an account (its sessions end); returns it, to be handed over."""
    require(actor, Permission.MANAGE_USERS)
    name = check_username(username)
    password = one_time_password()
    digest = hash_password(password)

    def work(con):
        require(actor, Permission.MANAGE_USERS, con)
        _existing(con, name)
        con.execute(
            """UPDATE app_users SET password_hash = ?, must_change = TRUE, one_time_used = FALSE,
                   failed_sign_ins = 0, locked_until = NULL WHERE username = ?""",
            [digest, name],
        )
        _end_sessions(con, name)
        audit.append(con, actor, "reset_password", name, after={"one_time_password": True})

    audit.write(work, db_path)
    forget_cached_sessions()
    return password


def set_disabled(actor: Account, username: str, disabled: bool, db_path=None) -> None:
    """Disable an account (its sessions end at once) or enable it again."""
    require(actor, Permission.MANAGE_USERS)
    name = check_username(username)
    if disabled and name == actor.username:
        raise InputError("you cannot disable your own account", fix="ask another admin")

    def work(con):
        require(actor, Permission.MANAGE_USERS, con)
        row = _existing(con, name)
        if disabled and row["role"] == "admin":
            _keep_an_admin(con, name)
        con.execute("UPDATE app_users SET disabled = ? WHERE username = ?", [disabled, name])
        if disabled:
            _end_sessions(con, name)
        action = "disable_user" if disabled else "enable_user"
        audit.append(
            con, actor, action, name, before={"disabled": row["disabled"]}, after={"disabled": disabled}
        )

    audit.write(work, db_path)
    forget_cached_sessions()


def bootstrap_admin(db_path=None) -> str | None:
    """Give the account 'admin' a fresh one-time password while it has never chosen its own (creating it
    on the very first run); returns the password to print, or None once the admin has set one."""
    with store.connect(db_path) as con:
        row = user_row(con, "admin")
    if row and (not row["must_change"] or row["disabled"]):
        return None
    password = one_time_password()
    digest = hash_password(password)

    def work(con):
        if row is None:
            con.execute(
                """INSERT INTO app_users (username, role, password_hash, must_change, created_at, created_by)
                   VALUES ('admin', 'admin', ?, TRUE, ?, 'system')""",
                [digest, utcnow()],
            )
            audit.append(
                con, SYSTEM, "create_user", "admin", after={"role": "admin", "one_time_password": True}
            )
        else:
            con.execute(
                """UPDATE app_users SET password_hash = ?, one_time_used = FALSE, failed_sign_ins = 0,
                       locked_until = NULL WHERE username = 'admin'""",
                [digest],
            )
            audit.append(con, SYSTEM, "reset_password", "admin", after={"one_time_password": True})

    audit.write(work, db_path)
    return password
