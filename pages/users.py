"""Users: create accounts, change roles, hand out one-time passwords, disable (admin only)."""

import streamlit as st

from core.errors import StudioError
from core.release import users
from core.release.roles import Permission, Role
from pages._session import require_account

actor = require_account(Permission.MANAGE_USERS)
st.title("Users and roles")
st.caption("Roles add up: viewer < merchandiser < product manager < admin. Every change is in the audit log.")

handed = st.session_state.pop("one_time_password", None)
if handed:
    st.success(f"One-time password for **{handed[0]}** — hand it over now; it is shown once and works once:")
    st.code(handed[1], language=None)


def act(action, *args, show_password: str | None = None) -> None:
    """Run an admin action; show its error, or rerun with the one-time password it returned."""
    try:
        result = action(actor, *args)
    except StudioError as exc:
        st.error(str(exc))
        st.stop()
    if show_password:
        st.session_state["one_time_password"] = (show_password, result)
    st.rerun()


accounts = users.list_users(actor)
st.dataframe(accounts, hide_index=True, width="stretch")
roles = [r.key for r in Role]

with st.form("create", clear_on_submit=True):
    st.subheader("New account")
    c1, c2, c3 = st.columns(3)
    name = c1.text_input("User name")
    role = c2.selectbox("Role", roles, format_func=lambda r: Role.parse(r).label)
    email = c3.text_input("E-mail (to sign in with the company account; optional)")
    if st.form_submit_button("Create account", type="primary"):
        act(users.create_user, name, role, email or None, show_password=name.strip().lower())

st.subheader("Change an account")
names = accounts["username"].to_list()
pick = st.selectbox("Account", names)
row = accounts.filter(accounts["username"] == pick).to_dicts()[0]
c1, c2, c3 = st.columns(3)
new_role = c1.selectbox(
    "New role", roles, index=roles.index(row["role"]), format_func=lambda r: Role.parse(r).label
)
if c1.button("Change role"):
    act(users.set_role, pick, new_role)
if c2.button("New one-time password"):
    act(users.reset_password, pick, show_password=pick)
if c3.button("Enable" if row["disabled"] else "Disable"):
    act(users.set_disabled, pick, not row["disabled"])
