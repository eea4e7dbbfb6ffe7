"""Data: load a log or a catalog, see what was rejected and why, the quality report, the features."""

import plotly.express as px
import streamlit as st

from core.data import features
from core.data.imports import confine, import_dirs, save_upload
from core.data.ingest import ingest_catalog, ingest_events, ingest_history, rejects_for
from core.data.quality import quality_report
from core.errors import StudioError
from core.ranking.homepage import invalidate
from core.release.roles import Permission
from pages._session import require_account

st.title("Data")
actor = require_account(Permission.INGEST)

load, history, quality, views = st.tabs(["Load a file", "Ingest history", "Quality", "Features"])

with load:
    kind = st.radio(
        "What is in the file?",
        ["Events (behaviour log)", "Catalog (items, sellers, promotions, users)"],
        horizontal=True,
    )
    fmt = st.selectbox(
        "Format",
        ["auto-detect", "native", "rees46", "retailrocket", "sequence", "pairs"],
        disabled=kind.startswith("Catalog"),
    )
    source = st.radio("From", ["Upload", "Path on the server"], horizontal=True)
    upload = path = None
    if source == "Upload":
        upload = st.file_uploader("Log file", type=["csv", "parquet", "jsonl", "json", "txt", "gz"])
    else:
        folders = ", ".join(str(d) for d in import_dirs())
        path = st.text_input("File path", placeholder="2019-Oct.csv", help=f"a file in {folders}")
        st.caption(f"Files are loaded from the import folder(s) only: {folders}")
    if st.button("Load", type="primary", disabled=not (upload or path)):
        bar = st.progress(0.0, text="reading…")
        show = lambda f, m="": bar.progress(min(1.0, f), text=m or "loading…")  # noqa: E731
        try:
            target = save_upload(upload.name, upload.getvalue()) if upload is not None else confine(path)
            if kind.startswith("Catalog"):
                result = ingest_catalog(target, actor=actor, progress=show)
            else:
                result = ingest_events(
                    target, None if fmt == "auto-detect" else fmt, actor=actor, progress=show
                )
        except StudioError as exc:
            bar.empty()
            st.error(str(exc))
            st.stop()
        bar.progress(1.0, text="done")
        invalidate()
        st.success(result.summary())
        if result.rejected:
            st.warning(f"{result.rejected:,} rows were rejected — see them under **Ingest history**.")

with history:
    runs = ingest_history()
    if runs.is_empty():
        st.caption("Nothing loaded yet.")
    else:
        st.dataframe(runs, hide_index=True, width="stretch")
        with_rejects = runs.filter(runs["rejected"] > 0)["ingest_id"].to_list()
        if with_rejects:
            pick = st.selectbox("Rejected rows of ingest", with_rejects)
            st.dataframe(rejects_for(pick), hide_index=True, width="stretch")

with quality:
    bot_rate = st.number_input(
        "A user with more than this many events in a minute is a suspected bot",
        min_value=2,
        max_value=1000,
        value=30,
    )
    report = quality_report(bot_events_per_minute=int(bot_rate))
    st.text(report.to_text())

with views:
    view = st.selectbox(
        "Feature",
        [
            "Funnel by category",
            "Browse paths (categories)",
            "Browse paths (items)",
            "Dwell time",
            "Click position",
            "Sessions",
            "Item statistics",
            "User statistics",
        ],
    )
    if view == "Funnel by category":
        frame = features.funnel(by="category")
        st.dataframe(frame, hide_index=True, width="stretch")
    elif view.startswith("Browse paths"):
        frame = features.browse_paths(level="category" if "categories" in view else "item", top=30)
        st.dataframe(frame, hide_index=True, width="stretch")
    elif view == "Dwell time":
        frame = features.dwell_times()
        st.plotly_chart(
            px.histogram(frame.head(200_000), x="dwell_ms", nbins=60, log_y=True), width="stretch"
        )
    elif view == "Click position":
        frame = features.click_positions()
        st.plotly_chart(px.bar(frame, x="position", y="clicks"), width="stretch")
    elif view == "Sessions":
        st.dataframe(features.sessions().head(1000), hide_index=True, width="stretch")
    elif view == "Item statistics":
        st.dataframe(features.item_stats().head(1000), hide_index=True, width="stretch")
    else:
        st.dataframe(features.user_stats().head(1000), hide_index=True, width="stretch")
