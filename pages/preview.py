"""Preview: any shopper's homepage exactly as the storefront would serve it, with and without the draft rules."""

import plotly.express as px
import streamlit as st

from core.errors import StudioError
from core.ranking import rows
from core.ranking.homepage import homepage_for
from core.ranking.kinds.fairness import protected_meaning
from core.ranking.rule_sets import draft_with, load_rule_set
from core.release import privacy
from core.release.roles import Permission
from pages._session import require_account
from pages._ui import badges, card_grid, card_html

st.title("Preview")
actor = require_account(Permission.VIEW)
shown_as = lambda user: privacy.shopper_label(actor, user)  # noqa: E731 (a pseudonym for viewers)

# --- pick a shopper -------------------------------------------------------------------------
c1, c2, c3 = st.columns([2, 1, 1])
typed = c1.text_input("Find a shopper by id (part of an id searches)", key="user_query")
segment = c2.selectbox("…or a random shopper from segment", ["any"] + rows.segments())
if c3.button("Random shopper", width="stretch"):
    st.session_state["user_id"] = rows.random_user(None if segment == "any" else segment)
if typed:
    chosen, matches = rows.resolve_user(typed)
    if not matches:
        st.warning(f"No shopper id contains “{typed}”. Check the id, or pick a random shopper.")
    else:
        st.session_state["user_id"] = chosen or st.selectbox(
            "Matching shoppers", matches, format_func=shown_as
        )
user_id = st.session_state.get("user_id")
if not user_id:
    st.info("Pick a shopper to see their homepage.")
    st.stop()

rule_set = st.session_state.get("draft") or load_rule_set()
try:
    view = homepage_for(user_id, rule_set, with_history=True)
except StudioError as exc:
    st.error(str(exc))
    st.stop()

privacy.record_view(actor, user_id, "preview")  # who looked at whom: the audit log
st.subheader(f"Shopper {shown_as(user_id)}")
attrs = {k: v for k, v in view.user.attrs.items() if k != "user_id" and v is not None}
st.caption(" · ".join(f"{k}: {v}" for k, v in attrs.items()) or "no attributes on file")
if not view.history.is_empty():
    with st.expander(f"Recent history ({len(view.history)} steps)", expanded=True):
        timeline = px.scatter(
            view.history,
            x="ts",
            y="event",
            color="category",
            hover_data=["title", "item_id", "seconds_to_next"],
            category_orders={"event": ["purchase", "add_to_cart", "click", "view"]},
        )
        timeline.update_layout(height=220, margin=dict(l=10, r=10, t=10, b=10), showlegend=False)
        st.plotly_chart(timeline, width="stretch")
        st.dataframe(view.history.reverse(), hide_index=True, width="stretch")
st.caption(f"Scores: {view.source} — {view.scoring_note}")

# --- the homepage, model only vs with the draft rules -------------------------------------------
moved = view.moved_items()
items = view.attrs_by_item()
left, right = st.columns(2)
with left:
    st.markdown("#### For you — model only")
    card_grid(
        [
            card_html(items[s.item_id], s.slot, [(f"model #{s.model_rank}", "#F1F2F5", "model")])
            for s in view.model_only.slots
        ]
    )
with right:
    st.markdown(f"#### For you — with draft rules (v{rule_set.version})")
    card_grid(
        [
            card_html(items[s.item_id], s.slot, badges(s.reasons), moved=s.item_id in moved)
            for s in view.ruled.slots
        ]
    )
for conflict in view.ruled.conflicts:
    st.warning(conflict.text())

m = view.metrics
cols = st.columns(5)
cols[0].metric("Intra-list diversity", f"{m.get('intra_list_diversity', 0):.3f}")
cols[1].metric("Categories covered", m.get("categories_covered", 0), help="distinct categories on the cards")
cols[2].metric("Calibration KL", f"{m.get('calibration_kl', 0):.3f}")
cols[3].metric("Score lost to rules", f"{m.get('score_lost', 0):.3f}")
share = m.get("protected_share")
cols[4].metric(
    "Protected share", "—" if share is None else f"{share:.0%}", help=protected_meaning(rule_set.rules)
)
if m.get("protected_prefix") is not None:
    st.caption("Protected items per prefix against the FA*IR minimum")
    st.line_chart(m["protected_prefix"], x="prefix", y=["protected", "fair_minimum"], height=180)

# --- quick rules from the preview ------------------------------------------------------------
with st.expander("Add a rule from this homepage (to the draft)"):
    pick = st.selectbox(
        "Item", [s.item_id for s in view.ruled.slots], format_func=lambda i: f"{i} — {items[i].get('title')}"
    )
    a1, a2, a3 = st.columns(3)
    slot = a1.number_input("Slot", min_value=1, max_value=len(view.ruled.slots) or 1, value=1)
    if a2.button("Pin here"):
        st.session_state["draft"] = draft_with(rule_set, "pin", item_id=pick, slot=int(slot))
        st.session_state["preview_flash"] = f"Pinned {pick} to slot {int(slot)} in the draft (see Rules)."
        st.rerun()
    if a3.button("Block item"):
        st.session_state["draft"] = draft_with(rule_set, "block", item_id=pick)
        st.session_state["preview_flash"] = f"Blocked {pick} in the draft: on every surface (see Rules)."
        st.rerun()
if "preview_flash" in st.session_state:
    st.success(st.session_state.pop("preview_flash"))

# --- the rest of the storefront --------------------------------------------------------------
for row in (
    rows.because_you_viewed(user_id, rule_set=rule_set),
    rows.trending_in_top_category(user_id, rule_set=rule_set),
    rows.deals_for_you(user_id, rule_set=rule_set),
):
    if row is None or row.items.is_empty():
        continue
    st.markdown(f"#### {row.title}")
    st.caption(row.note)
    card_grid([card_html(r) for r in row.items.to_dicts()])

st.divider()
s1, s2 = st.columns(2)
with s1:
    item = st.text_input("Similar items for item id (a product page)")
    if item:
        try:
            row = rows.similar_items(item.strip(), rule_set=rule_set, user_id=user_id)
        except StudioError as exc:
            st.error(str(exc))
        else:
            st.markdown(f"**{row.title}**")
            st.caption(row.note)
            card_grid([card_html(r) for r in row.items.to_dicts()])
with s2:
    query = st.text_input("Search titles, personalized for this shopper")
    if query:
        row = rows.personalized_search(user_id, query, rule_set=rule_set)
        st.markdown(f"**{row.title}**")
        st.caption(row.note)
        if row.items.is_empty():
            st.info(f"No title matches “{query}”.")
        card_grid([card_html(r) for r in row.items.to_dicts()])
