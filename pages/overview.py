"""Overview: what is in the store, and the funnel."""

import plotly.express as px
import streamlit as st

from core.data.features import funnel, overview_stats

st.title("Overview")
stats = overview_stats()
if not stats["events"]:
    st.info("The store is empty. Load a log on the **Data** page, or run `python -m core demo`.")
    st.stop()

cols = st.columns(5)
cols[0].metric("Events", f"{stats['events']:,}")
cols[1].metric("Users", f"{stats['users']:,}")
cols[2].metric("Items", f"{stats['items']:,}")
cols[3].metric("Sessions", f"{stats['sessions']:,}")
cols[4].metric("Days", f"{stats['days']:,}")
st.caption(f"From {stats['first_event']} to {stats['last_event']}")

st.subheader("Funnel: view → click → add to cart → purchase")
steps = funnel()
fig = px.funnel(steps, x="events", y="step")
fig.update_layout(height=340, margin=dict(l=10, r=10, t=10, b=10))
st.plotly_chart(fig, width="stretch")

st.subheader("Events by type")
st.dataframe(stats["by_type"], hide_index=True)
