"""Rules: edit the draft rule set, see its impact on a sample of shoppers, save it (versioned)."""

import plotly.express as px
import streamlit as st

from core.errors import StudioError
from core.ranking.impact import rule_set_impact
from core.ranking.rule_sets import apply_edits, load_rule_set, rules_to_frame, save_rule_set
from core.ranking.rules import KINDS

st.title("Rules")

COLUMNS = {
    "kind": st.column_config.SelectboxColumn("kind", options=list(KINDS), required=True),
    "target": st.column_config.TextColumn(
        "target",
        help="pin: item_id=ID · block/boost/bury/reserve/fairness: category=a.b;brand=X;seller_tier=small;"
        "price_min=1;price_max=9;new_days=14;promoted · cap: category|brand|seller_id · diversity: mmr|dpp",
    ),
    "value": st.column_config.NumberColumn(
        "value",
        help="boost/bury factor · reserve slots · cap max · diversity strength 0–1 · fairness share p",
    ),
    "slot": st.column_config.NumberColumn("slot", min_value=1, max_value=48, step=1),
    "scope": st.column_config.TextColumn("scope", help='all · segment: region == "north" · users: u1, u2'),
    "enabled": st.column_config.CheckboxColumn("enabled", default=True),
}

if "draft" not in st.session_state:
    st.session_state["draft"] = load_rule_set()
draft = st.session_state["draft"]
st.caption(
    f"Draft of rule set **{draft.rule_set_id}**, based on saved version {draft.version}. "
    "Changes stay in this draft until you save; the preview uses the draft."
)

edited = st.data_editor(
    rules_to_frame(draft).to_pandas(),
    num_rows="dynamic",
    width="stretch",
    column_config=COLUMNS,
    key=f"editor-{draft.version}",
)

c1, c2, c3 = st.columns(3)
if c1.button("Apply to draft", type="primary", width="stretch"):
    try:
        candidate = apply_edits(draft, edited)
    except StudioError as exc:
        st.error(str(exc))
        st.stop()
    st.session_state["draft"] = candidate
    st.rerun()
note = c2.text_input("Note for this version", placeholder="why this change")
if c3.button("Save as new version", width="stretch"):
    try:
        saved = save_rule_set(
            draft, expected_version=draft.version, saved_by=st.session_state.get("role", "?"), note=note
        )
    except StudioError as exc:
        st.error(str(exc))
        st.stop()
    st.session_state["draft"] = saved
    st.success(f"Saved as version {saved.version}.")
if st.button("Discard draft and reload the latest saved version"):
    st.session_state["draft"] = load_rule_set()
    st.rerun()

st.subheader("Impact on a sample of shoppers")
n = st.slider("Sample size", min_value=50, max_value=2000, value=500, step=50)
if st.button("Measure impact"):
    with st.spinner(f"Building {n} homepages with and without the draft…"):
        try:
            impact = rule_set_impact(st.session_state["draft"], n_users=n)
        except StudioError as exc:
            st.error(str(exc))
            st.stop()
    st.session_state["impact"] = impact
impact = st.session_state.get("impact")
if impact is not None:
    st.caption(f"{impact.users} shoppers; {impact.conflicts} homepages had a rule conflict.")
    st.dataframe(impact.summary, hide_index=True, width="stretch")
    if not impact.per_rule.is_empty():
        fig = px.bar(
            impact.per_rule,
            x="rule_id",
            y="homepages changed",
            color="kind",
            title="Homepages each rule changed",
        )
        fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10))
        st.plotly_chart(fig, width="stretch")
