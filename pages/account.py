"""Your password: chosen at the first sign-in (a one-time password works once), changed at any time."""

import streamlit as st

from core.errors import StudioError
from core.release import auth
from pages._session import TOKEN, require_account

account = require_account(permission=None)
st.title("Your password")
if st.session_state.pop("password_changed", False):
    st.success("Password changed.")
if account.must_change_password:
    st.info(
        f"Welcome, **{account.username}**. You signed in with a one-time password, which no longer works: "
        "choose your own to continue."
    )

with st.form("password", clear_on_submit=True):
    current = None if account.must_change_password else st.text_input("Current password", type="password")
    new = st.text_input("New password (at least 10 characters)", type="password")
    again = st.text_input("New password again", type="password")
    submitted = st.form_submit_button("Save password", type="primary")
if submitted:
    if new != again:
        st.error("The two new passwords differ: type the same one twice.")
        st.stop()
    try:
        auth.change_password(account, new, current, keep_token=st.session_state.get(TOKEN))
    except StudioError as exc:
        st.error(str(exc))
        st.stop()
    st.session_state["password_changed"] = True
    st.rerun()
