"""Publish: the draft against the live release and its impact, one button with a confirmation; what goes
live when, the release history with rollback, and the audit log."""

from datetime import UTC, datetime, timedelta

import streamlit as st

from core.errors import StudioError
from core.insight.audit_population import draft_flags
from core.ranking.rule_sets import load_rule_set
from core.release import audit, releases
from core.release.diff import publish_impact, release_diff, unsaved_edits
from core.release.roles import Permission
from pages._session import require_account

actor = require_account(Permission.PUBLISH)
st.title("Publish")
if "publish_reconciled" not in st.session_state:  # repair what an interrupted publish left, once a session
    releases.reconcile(wait=False)
    st.session_state["publish_reconciled"] = True
if "publish_diff" not in st.session_state:  # kept until refreshed: a publish is checked against it
    st.session_state["publish_diff"] = release_diff()
diff = st.session_state["publish_diff"]
state = releases.release_state()
done = st.session_state.pop("publish_done", None)
if done:
    st.success(done)


def finish(message: str) -> None:
    st.session_state["publish_done"] = message
    for key in ("publish_diff", "publish_impact", "publish_flags"):
        st.session_state.pop(key, None)
    st.rerun()


@st.dialog("Publish the draft")
def confirm_publish() -> None:
    st.write(f"Rule set v{diff.draft.rule_set_version} · {len(diff.rules)} rule change(s) · model "
             f"{'changed' if diff.model_changed else 'unchanged'} ({diff.draft.run_id or 'popularity'})")  # fmt: skip
    note = st.text_area("Note (required): why this goes live")
    later = st.checkbox("Go live later (UTC)")
    starts_at = None
    if later:
        soon = datetime.now(UTC) + timedelta(hours=1)
        day, time = st.columns(2)
        starts_at = datetime.combine(
            day.date_input("Day", soon.date()), time.time_input("Time", soon.time()), UTC
        )
    if st.button("Schedule" if later else "Publish now", type="primary"):
        try:
            with st.spinner("Writing the release artifact…"):
                r = releases.publish(
                    actor, note, expected_head=diff.head_id, expected_draft=diff.draft, starts_at=starts_at
                )
        except StudioError as exc:
            st.error(str(exc))
            return
        finish(
            f"Release {r.release_id} "
            + (f"goes live at {r.starts_at:%Y-%m-%d %H:%M} UTC." if r.starts_at else "is live.")
        )


@st.dialog("Roll back")
def confirm_rollback(target: int) -> None:
    st.write(f"Release {target}'s artifact goes live again, as a new release.")
    note = st.text_area("Note (required)", value=f"roll back to release {target}")
    if st.button("Roll back now", type="primary"):
        try:
            r = releases.rollback(actor, target, note, expected_head=diff.head_id)
        except StudioError as exc:
            st.error(str(exc))
            return
        finish(f"Release {r.release_id} is live: release {target}'s artifact again.")


# --- what is live, and what goes live when -----------------------------------------------------------
live = state.live
if live:
    st.markdown(f"**Live now: release {live.release_id}** — {live.note} · by {live.published_by}, "
                f"{live.effective_at:%Y-%m-%d %H:%M} UTC")  # fmt: skip
else:
    st.info("Nothing is published yet.")
for r in state.upcoming:
    c1, c2 = st.columns([4, 1])
    c1.info(
        f"Release {r.release_id} goes live at {r.effective_at:%Y-%m-%d %H:%M} UTC — {r.note} (by {r.published_by})"
    )
    if c2.button("Cancel it", key=f"cancel-{r.release_id}"):
        try:
            releases.cancel_scheduled(
                actor, r.release_id, f"cancelled on the Publish page by {actor.username}"
            )
        except StudioError as exc:
            st.error(str(exc))
            st.stop()
        finish(f"Release {r.release_id} will not go live.")

# --- the diff, its impact, the button ------------------------------------------------------------------
against = f"release {diff.live.release_id}" if diff.live else "nothing published"
c1, c2 = st.columns([4, 1])
c1.subheader(f"Draft (rule set v{diff.draft.rule_set_version}) against {against}")
if c2.button("Refresh diff", width="stretch"):
    finish("Diff refreshed.")
stale = state.head_id != diff.head_id
if stale:
    st.warning(f"Release {state.head_id} was made after this diff was computed (against release "
               f"{diff.head_id or 'none'}): refresh the diff before you publish.")  # fmt: skip
if unsaved_edits(st.session_state.get("draft")):
    st.warning("The Rules page has edits you have not saved: only a saved rule-set version is published.")
table = diff.table()
if table.is_empty():
    st.caption("No rule changes.")
else:
    st.dataframe(table, hide_index=True, width="stretch")
st.markdown(f"**Model:** {'changed' if diff.model_changed else 'unchanged'} — draft "
            f"`{diff.draft.run_id or 'popularity'}`, live `{diff.live.run_id if diff.live else '—'}`")  # fmt: skip

if st.button("Measure impact on 200 shoppers"):
    with st.spinner(
        "Ranking 200 homepages with the live rules and with the draft's, and auditing the draft…"
    ):
        draft_rules = load_rule_set(diff.draft.rule_set_id, diff.draft.rule_set_version or None)
        st.session_state["publish_impact"] = publish_impact(diff, 200)
        st.session_state["publish_flags"] = draft_flags(actor, draft_rules, sample=200)
impact = st.session_state.get("publish_impact")
if impact:
    st.metric("Homepages changed", f"{impact.homepages_changed} of {impact.users}")
    st.dataframe(impact.summary, hide_index=True, width="stretch")
    st.markdown("**Bias audit of the draft** (200 sampled shoppers; the Audit page has the rest)")
    for flag in st.session_state.get("publish_flags") or []:
        st.warning(flag)
    if not st.session_state.get("publish_flags"):
        st.caption(
            "No flags: no group's exposure, popularity bias or calibration crosses the audit's limits."
        )

if st.button("Publish…", type="primary", disabled=stale):
    confirm_publish()

# --- history and rollback -------------------------------------------------------------------------------
st.subheader("Releases")
for r in state.releases[:20]:
    status = state.status(r)
    c1, c2, c3 = st.columns([1, 6, 2])
    c1.markdown(f"**{r.release_id}**")
    what = f"rollback to {r.rollback_of}" if r.kind == "rollback" else f"rules v{r.rule_set_version}"
    c2.caption(f"{status} · {what} · model {r.run_id or 'popularity'} · {r.published_by}, "
               f"{r.published_at:%Y-%m-%d %H:%M} UTC — {r.note}")  # fmt: skip
    if status == "superseded" and c3.button(
        "Roll back to this", key=f"rollback-{r.release_id}", disabled=stale
    ):
        confirm_rollback(r.release_id)

# --- the audit log -------------------------------------------------------------------------------------
st.subheader("Audit log")
f1, f2, f3, f4 = st.columns(4)
who = f1.text_input("Actor")
actions = f2.multiselect("Action", audit.ACTIONS)
target = f3.text_input("Object contains")
since = f4.date_input("Since (UTC)", datetime.now(UTC).date() - timedelta(days=30))
log = audit.query(actor, actor=who or None, action=actions, target=target or None,
                  since=datetime.combine(since, datetime.min.time()), limit=300)  # fmt: skip
st.dataframe(log.rename({"target": "object"}), hide_index=True, width="stretch")
