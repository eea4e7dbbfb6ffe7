"""Sign in: a local account (user name and password), or the company's OIDC provider when configured."""

import streamlit as st

from core.errors import SignInError
from core.release import auth
from pages._session import MESSAGE, oidc_providers, start

st.title("Sign in to Homepage Studio")
message = st.session_state.pop(MESSAGE, None)
if message:
    st.warning(message)

providers = oidc_providers()
if providers:
    for provider in providers:
        label = "Sign in with your company account" if provider == "default" else f"Sign in with {provider}"
        if st.button(label, type="primary", key=f"oidc-{provider}"):
            st.login(None if provider == "default" else provider)
    st.caption("…or with a local account:")

with st.form("sign-in"):
    username = st.text_input("User name")
    password = st.text_input("Password", type="password")
    submitted = st.form_submit_button("Sign in", type="primary")
if submitted:
    try:
        session = auth.sign_in(username, password)
    except SignInError as exc:
        st.error(str(exc))
        st.stop()
    start(session)
    st.rerun()
st.caption("First start? `make run` printed a one-time password for the account **admin** in its terminal.")
