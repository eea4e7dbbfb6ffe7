"""Homepage Studio: the sign-in gate, then the page list for the signed-in account's role (st.navigation).

Hiding a page is a convenience; core checks the role again in every action (core.release.roles.require).
"""

import streamlit as st

from core.release.roles import Permission, allowed
from pages._session import current_account, sign_out

st.set_page_config(page_title="Homepage Studio", page_icon="🛍️", layout="wide")

account = current_account()
if account is None:
    st.navigation([st.Page("pages/sign_in.py", title="Sign in", icon="🔑")], position="hidden").run()
    st.stop()
if account.must_change_password:
    st.navigation([st.Page("pages/account.py", title="Your password", icon="🔑")], position="hidden").run()
    st.stop()

PAGES = [  # each page, and the permission that shows it (roles are cumulative)
    (st.Page("pages/overview.py", title="Overview", icon="🏠", default=True), Permission.VIEW),
    (st.Page("pages/preview.py", title="Preview", icon="👀"), Permission.VIEW),
    (st.Page("pages/explain.py", title="Explain", icon="🔍"), Permission.VIEW),
    (st.Page("pages/rules.py", title="Rules", icon="🎛️"), Permission.EDIT_RULES),
    (st.Page("pages/publish.py", title="Publish", icon="🚀"), Permission.PUBLISH),
    (st.Page("pages/audit.py", title="Audit", icon="⚖️"), Permission.AUDIT),
    (st.Page("pages/data.py", title="Data", icon="🗂️"), Permission.INGEST),
    (st.Page("pages/model.py", title="Model", icon="🧠"), Permission.TRAIN),
    (st.Page("pages/users.py", title="Users", icon="👥"), Permission.MANAGE_USERS),
    (st.Page("pages/account.py", title="Your password", icon="🔑"), Permission.VIEW),
]

with st.sidebar:
    st.markdown("### 🛍️ Homepage Studio")
    st.caption(f"Signed in as **{account.username}** · {account.role.label}")
    if st.button("Sign out", width="stretch"):
        sign_out()
        st.rerun()

st.navigation([page for page, permission in PAGES if allowed(account, permission)]).run()
