"""Homepage Studio: the page list for the signed-in role (st.navigation)."""

import streamlit as st

st.set_page_config(page_title="Homepage Studio", page_icon="🛍️", layout="wide")

ROLES = {
    "Merchandiser": ["overview", "data", "model", "preview", "rules", "explain"],
    "Product manager": ["overview", "data", "model", "preview", "explain"],
}
PAGES = {
    "overview": st.Page("pages/overview.py", title="Overview", icon="🏠", default=True),
    "data": st.Page("pages/data.py", title="Data", icon="🗂️"),
    "model": st.Page("pages/model.py", title="Model", icon="🧠"),
    "preview": st.Page("pages/preview.py", title="Preview", icon="👀"),
    "rules": st.Page("pages/rules.py", title="Rules", icon="🎛️"),
    "explain": st.Page("pages/explain.py", title="Explain", icon="🔍"),
}

with st.sidebar:
    st.markdown("### 🛍️ Homepage Studio")
    role = st.selectbox("Signed in as", list(ROLES), key="role")

nav = st.navigation([PAGES[name] for name in ROLES[role]])
nav.run()
