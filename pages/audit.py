"""Audit: who gets shown, who is left out, and for whom the homepages work worse — model, draft, live."""

import streamlit as st

from core.errors import StudioError
from core.insight.audit import LISTS, USER_DIMENSIONS
from core.insight.audit_export import figures, report_csv, report_html
from core.insight.audit_population import audit_inputs
from core.insight.audit_report import LIST_LABELS, build_report
from core.ranking.rule_sets import load_rule_set
from core.release.roles import Permission
from pages._session import require_account

st.title("Bias audit")
actor = require_account(Permission.AUDIT)
st.caption(
    "Exposure by seller, brand, category and item age; popularity bias; quality by shopper group on each "
    "shopper's held-out next step. Formulas and flag rules: docs/METRICS.md."
)

with st.form("audit_form"):
    c1, c2, c3 = st.columns(3)
    everyone = c1.toggle(
        "All shoppers",
        value=False,
        key="audit_all",
        help="every shopper with history: minutes on a large shop",
    )
    size = c1.number_input(
        "Sample size", min_value=10, max_value=1_000_000, value=1000, step=500, key="audit_sample"
    )
    seed = c1.number_input("Seed", min_value=0, value=0, key="audit_seed")
    grouping = c2.selectbox("Group shoppers by", USER_DIMENSIONS, key="audit_grouping")
    target = c2.radio(
        "A fair share is the group's share of",
        ["catalog", "relevance"],
        key="audit_target",
        format_func={"catalog": "the catalog", "relevance": "the demand (interactions)"}.get,
    )
    against = c3.multiselect(
        "Compare", list(LISTS), default=["model", "draft"], format_func=LIST_LABELS.get, key="audit_against"
    )
    run = st.form_submit_button("Run the audit", type="primary")

if run:
    draft = (
        st.session_state.get("draft") or load_rule_set()
    )  # the Rules page's working draft, else the saved one
    bar = st.progress(0.0, "starting")
    try:
        inputs = audit_inputs(
            tuple(against),
            draft,
            actor=actor,
            sample=None if everyone else int(size),
            seed=int(seed),
            progress=lambda f, msg="": bar.progress(min(1.0, max(0.0, f)), msg),
        )
        report = build_report(inputs, grouping, target, seed=int(seed))
    except StudioError as exc:
        st.error(str(exc))
        st.stop()
    bar.empty()
    st.session_state["audit"] = {"report": report, "csv": report_csv(report), "html": report_html(report)}

if "audit" not in st.session_state:
    st.info("Pick the population, the grouping and the lists to compare, then run the audit.")
    st.stop()

audit = st.session_state["audit"]
report = audit["report"]
st.subheader("Flags")
st.caption(f"{report.population}; as of {report.now:%Y-%m-%d %H:%M}")
for a in report.lists.values():
    if a.flags:
        st.warning(f"**{a.label}**\n" + "".join(f"\n- {sentence}" for sentence in a.flags))
    else:
        st.success(f"**{a.label}**: nothing crosses the flag thresholds.")

cols = st.columns(len(report.lists))
for col, a in zip(cols, report.lists.values()):
    col.metric(f"{a.label}: item Gini", f"{a.gini_items:.2f}")
    col.metric(f"coverage@{a.k}", f"{a.coverage:.1%}")
    col.metric(
        "long-tail share of slots",
        f"{a.aplt:.1%}",
        help=f"long tail: {a.tail_interaction_share:.0%} of interactions",
    )

for name, fig in figures(report).items():
    st.plotly_chart(fig, width="stretch", key=f"audit_{name}")

d1, d2 = st.columns(2)
d1.download_button("Download CSV", audit["csv"], file_name="audit.csv", mime="text/csv", key="audit_csv")
d2.download_button(
    "Download HTML report", audit["html"], file_name="audit.html", mime="text/html", key="audit_html"
)
