"""Explain: why this item is in this slot for this shopper (SHAP on the model, and what the rules did)."""

import plotly.graph_objects as go
import streamlit as st

from core.errors import StudioError
from core.insight.why import explain_slot, global_drivers
from core.ranking.limits import DEFAULT_K
from core.ranking.rule_sets import load_rule_set
from core.release import privacy
from core.release.roles import Permission
from pages._session import require_account
from pages._ui import badge_html, badges

st.title("Explain")
actor = require_account(Permission.VIEW)

# the widgets own their state (keys): passing a value computed from the state as well would reset them
st.session_state.setdefault("explain_user", st.session_state.get("user_id") or "")
st.session_state.setdefault("explain_slot", 1)
user_id = st.text_input("Shopper", key="explain_user").strip()
if not user_id:
    st.info("Pick a shopper on the **Preview** page, or type an id.")
    st.stop()
st.session_state["user_id"] = user_id
slot = st.number_input("Slot", min_value=1, max_value=DEFAULT_K, step=1, key="explain_slot")

try:
    why = explain_slot(user_id, int(slot), st.session_state.get("draft") or load_rule_set())
except StudioError as exc:
    st.error(str(exc))
    st.stop()
privacy.record_view(actor, user_id, "explain")  # who looked at whom: the audit log

st.subheader(f"Slot {why.slot}: {why.item_title}")
st.markdown("".join(badge_html(*b) for b in badges(why.reasons)), unsafe_allow_html=True)
st.markdown(f"**{why.sentence}**")
st.info(why.rules_effect)
if why.parts_sentence:  # a blend: what each of its parts added
    st.markdown(why.parts_sentence)

rows = why.waterfall
fig = go.Figure(
    go.Waterfall(
        orientation="h",
        measure=["absolute"] + ["relative"] * (len(rows) - 2) + ["total"],
        y=[r["label"] for r in rows],
        x=[r["value"] for r in rows],
        connector={"line": {"color": "#C9CCD3"}},
        increasing={"marker": {"color": "#2E9E5B"}},
        decreasing={"marker": {"color": "#D1495B"}},
        totals={"marker": {"color": "#1F2430"}},
    )
)
fig.update_layout(
    height=max(320, 26 * len(rows)),
    margin=dict(l=10, r=10, t=30, b=10),
    title="From the base value to the model's score (logit)",
    yaxis={"autorange": "reversed"},
)
st.plotly_chart(fig, width="stretch")
e = why.explanation
st.caption(
    f"SHAP {e.method} explainer, {e.n_evals} model evaluations in {e.seconds:.2f} s; "
    f"base value {e.base_value:.3f} + attributions = score {e.score:.3f}."
)

st.subheader("What drives recommendations across shoppers")
target = st.text_input("Item id or category path", value=why.item_id)
if st.button("Compute global view"):
    with st.spinner("Explaining a sample of shoppers…"):
        try:
            drivers = global_drivers(target, n_users=60)
        except StudioError as exc:
            st.error(str(exc))
            st.stop()
    for name, frame in drivers.items():
        st.markdown(f"**By {name}**")
        st.bar_chart(frame, x=frame.columns[0], y=frame.columns[1], height=220)
