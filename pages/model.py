"""Model: train an LSTM, a transformer or a blend in the background (pretrain / fine-tune), watch the curves,
compare runs on the same split, activate one."""

import plotly.express as px
import streamlit as st

from core.errors import StudioError
from core.jobs import finetune_spec, job_output, list_jobs, start_training
from core.model_runs import activate_run, active_run, compare_runs, runs_table
from core.ranking.homepage import invalidate
from core.release.roles import Permission
from core.training import ARCHITECTURE_LABELS, ARCHITECTURES
from pages._session import require_account

st.title("Model")
actor = require_account(Permission.TRAIN)

current = active_run()
if current is None:
    st.warning("No model trained yet: homepages use the **popularity baseline** until a run is active.")
else:
    st.success(f"Active run: **{current['run_id']}** (trained {current['created_at']:%Y-%m-%d %H:%M})")

with st.form("train"):
    st.subheader("Train a new run")
    c1, c2, c3 = st.columns(3)
    architecture = c1.selectbox("Architecture", list(ARCHITECTURES), format_func=ARCHITECTURE_LABELS.get)
    mode = c1.selectbox("Mode", ["Pretrain on all behaviour", "Pretrain + fine-tune on a slice"])
    slice_kind = c2.selectbox("Fine-tune slice", ["purchases", "recent:7d", "category:"], disabled=False)
    slice_arg = c2.text_input("Category path (for category:)", placeholder="electronics.phones")
    budget = c3.number_input("Time budget (minutes)", min_value=0.5, max_value=120.0, value=5.0, step=0.5)
    epochs = c3.number_input("Max epochs (0 = default)", min_value=0, max_value=200, value=0)
    submitted = st.form_submit_button("Start training", type="primary")
if submitted:
    finetune_on = None
    if mode.startswith("Pretrain +"):
        finetune_on = finetune_spec(slice_kind, slice_arg)
    job = start_training(
        actor=actor,
        architecture=architecture,
        finetune_on=finetune_on,
        epochs=int(epochs) or None,
        time_budget_min=float(budget),
    )
    st.session_state["watch_job"] = job.job_id
    st.toast(f"Training started in the background (job {job.job_id}); other users can keep working.")


@st.fragment(run_every=2.0)
def live_jobs() -> None:
    jobs = list_jobs(limit=5)
    if not jobs:
        st.caption("No training jobs yet.")
        return
    for job in jobs:
        label = f"Job {job.job_id} — {job.state}"
        with st.expander(
            label, expanded=job.state == "running" or job.job_id == st.session_state.get("watch_job")
        ):
            last = job.latest
            st.progress(
                float(last["fraction"]) if last else 0.0,
                text=f"{last['stage']} epoch {last['epoch']}" if last else "starting…",
            )
            epochs = job.validation_points()
            if job.progress:
                fig = px.line(
                    job.loss_points(),
                    x="t",
                    y="loss",
                    color="stage",
                    title="training loss",
                )
                fig.update_layout(height=260, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="time")
                st.plotly_chart(fig, width="stretch", key=f"loss-{job.job_id}")
            if epochs:
                fig = px.line(
                    epochs, x="epoch", y="ndcg@10", color="stage", markers=True, title="validation NDCG@10"
                )
                fig.update_layout(height=260, margin=dict(l=10, r=10, t=40, b=10))
                st.plotly_chart(fig, width="stretch", key=f"val-{job.job_id}")
            if job.state == "failed":
                st.error(f"Training failed: {job.result['detail']}. The active run was left untouched.")
            elif job.state == "died":
                st.error("The training process ended without a result. Its output:")
                st.code(job_output(job))
            elif job.state == "done":
                st.success(job.result["detail"])


live_jobs()

st.subheader("Runs")
runs = runs_table()
if runs.is_empty():
    st.caption("No runs yet.")
else:
    compared = compare_runs()
    if compared["run"].n_unique() > 1:
        fig = px.bar(
            compared, x="run", y="value", color="metric", barmode="group", title="validation, same split"
        )
        fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10), xaxis_title=None, yaxis_title=None)
        st.plotly_chart(fig, width="stretch", key="compare-runs")
        st.caption(
            "Runs trained on the same data are validated on the same split: the latest step of the same sample "
            "of shoppers, ranked against the whole catalog with their history excluded."
        )
    st.dataframe(runs, hide_index=True, width="stretch")
    done = runs.filter(runs["status"] == "done")["run_id"].to_list()
    if done:
        c1, c2 = st.columns([3, 1])
        pick = c1.selectbox("Run to activate", done)
        if c2.button("Activate", width="stretch"):
            try:
                activate_run(pick, actor)
            except StudioError as exc:
                st.error(str(exc))
                st.stop()
            invalidate()
            st.success(
                f"Run {pick} is now the draft's model: the preview uses it; shoppers get it when you publish."
            )
            st.rerun()
