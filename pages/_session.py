"""The signed-in account of this browser session: app.py gates on it, every page asks for it.

The session token lives in ``st.session_state`` (one browser tab); core checks it on each run (expiry,
sign-out, a changed role). With an OIDC provider in ``.streamlit/secrets.toml``, ``st.user`` carries the
identity and core maps its e-mail to an account.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamlit as st

from core.errors import SignInError
from core.release import auth
from core.release.roles import Account, Permission, allowed

TOKEN = "session_token"
MESSAGE = "sign_in_message"


def oidc_providers() -> list[str] | None:
    """None without an OIDC provider; else the providers to offer ("default": the [auth] section itself)."""
    try:
        section = st.secrets.get("auth")
    except Exception:  # no secrets.toml at all
        return None
    if not section:
        return None
    named = [key for key, value in section.items() if isinstance(value, Mapping)]
    return named or (["default"] if "client_id" in section else None)


def start(session: auth.Session) -> None:
    st.session_state[TOKEN] = session.token


def current_account() -> Account | None:
    token = st.session_state.get(TOKEN)
    if token:
        try:
            return auth.session_account(token)
        except SignInError as exc:
            st.session_state.pop(TOKEN, None)
            st.session_state[MESSAGE] = str(exc)
            return None
    if oidc_providers() and st.user.get("is_logged_in") and not st.session_state.get("oidc_refused"):
        try:
            session = auth.oidc_sign_in(str(st.user.get("email") or ""), st.user.get("email_verified"))
        except SignInError as exc:
            st.session_state["oidc_refused"] = True  # one refusal (and audit row) per browser session
            st.session_state[MESSAGE] = str(exc)
            return None
        start(session)
        return session.account
    return None


def sign_out() -> None:
    """End the session in core and forget this tab's state (the next person starts clean)."""
    token = st.session_state.get(TOKEN)
    if token:
        auth.sign_out(token)
    st.session_state.clear()
    if oidc_providers() and st.user.get("is_logged_in"):
        st.logout()


def require_account(permission: Permission | None = Permission.VIEW) -> Account:
    """The signed-in account, or stop the page with the reason (core checks again in every action).
    ``permission=None``: any signed-in account, even one that must still replace a one-time password."""
    account = current_account()
    if account is None:
        st.error(st.session_state.get(MESSAGE) or "Sign in first.")
        st.stop()
    if permission is not None and not allowed(account, permission):
        st.error(f"Your role ({account.role.label}) may not {permission.doing}.")
        st.stop()
    return account
