"""Rules: the draft rule set as forms (one per rule kind), its difference from the saved version, impact on a
sample of shoppers, saving (versioned), the version history with "restore as draft", and the raw table."""

import plotly.express as px
import streamlit as st

from core.errors import StudioError
from core.ranking import kinds
from core.ranking.impact import rule_set_impact
from core.ranking.rule_sets import (
    apply_edits,
    diff,
    list_versions,
    load_rule_set,
    new_rule_id,
    put_rule,
    remove_rule,
    restore_as_draft,
    rules_to_frame,
    save_rule_set,
)
from core.ranking.rules import Rule, RuleSet
from core.ranking.segments import describe_scope
from core.release.roles import Permission
from pages import _forms
from pages._session import require_account

st.title("Rules")
actor = require_account(Permission.EDIT_RULES)
ss = st.session_state
if "draft" not in ss:
    ss["draft"] = load_rule_set()
ss.setdefault("form", 0)  # a new number: a fresh form
draft = ss["draft"]


def changed(text: str, new_draft=None, **state) -> None:
    """Keep the new draft, say what happened on the next run, start a fresh form."""
    if new_draft is not None:
        ss["draft"] = new_draft
    ss["flash"] = text
    ss["form"] += 1
    ss.update(state)
    st.rerun()


if "flash" in ss:
    st.success(ss.pop("flash"))

# --- where the draft stands ----------------------------------------------------------------------
base = load_rule_set(version=draft.version) if draft.version else RuleSet(rule_set_id=draft.rule_set_id)
latest = load_rule_set()
change = diff(base, draft)
if change.empty:
    st.caption(f"Draft of rule set **{draft.rule_set_id}**: the same as saved version {draft.version}.")
else:
    st.info(
        f"The draft differs from saved version {draft.version}: {change.summary()}. The preview uses the draft."
    )
    with st.expander("What the draft changes"):
        st.markdown("\n".join(f"- {line}" for line in change.lines()))
if latest.version > draft.version:
    st.warning(
        f"Version {latest.version} was saved by {latest.saved_by} since this draft was loaded: saving will be "
        "refused. Discard the draft to start from it, or restore your version after."
    )

# --- the rules ------------------------------------------------------------------------------------
st.subheader(f"Rules ({len(draft.rules)})")
if not draft.rules:
    st.caption("No rules yet: every shopper sees the model's ranking. Add one below.")
for rule in draft.rules:
    with st.container(border=True):
        text, edit, drop = st.columns([7, 1, 1.3])
        state = "" if rule.enabled else " · **disabled**"
        window = f" · from {rule.starts_at:%Y-%m-%d %H:%M}" if rule.starts_at else ""
        window += f" · until {rule.ends_at:%Y-%m-%d %H:%M}" if rule.ends_at else ""
        text.markdown(
            f"**{rule.rule_id}** — {rule.sentence()}  \n*{describe_scope(rule.scope)}*{window}{state}"
        )
        if edit.button("Edit", key=f"edit:{rule.rule_id}"):
            changed(f"Editing {rule.rule_id}.", editing=rule.rule_id)
        if drop.button("Remove", key=f"remove:{rule.rule_id}"):
            changed(f"Removed {rule.rule_id} from the draft.", remove_rule(draft, rule.rule_id))

# --- one rule's form ------------------------------------------------------------------------------
editing = next((r for r in draft.rules if r.rule_id == ss.get("editing")), None)
all_kinds = kinds.all_kinds()
if editing is None:
    st.subheader("Add a rule")
    kind = st.selectbox("Kind", all_kinds, format_func=lambda k: f"{k.title} — {k.summary}", key="new_kind")
else:
    kind = kinds.get(editing.kind)
    st.subheader(f"Change {editing.rule_id} ({kind.title.lower()})")
prefix = f"form{ss['form']}:{kind.name}"
with st.container(border=True):
    params = _forms.params_form(kind, prefix, editing)
    try:
        scope = _forms.scope_picker(prefix, editing.scope if editing else "all")
    except StudioError as exc:
        st.error(str(exc))
        scope = None
    starts, ends = _forms.window_picker(prefix, editing)
    c1, c2, c3 = st.columns([2, 3, 1])
    taken = {r.rule_id for r in draft.rules}
    rule_id = c1.text_input(
        "Rule id",
        key=_forms.seed(f"{prefix}:id", editing.rule_id if editing else new_rule_id(kind.name, taken)),
    )
    note = c2.text_input("Note", key=_forms.seed(f"{prefix}:note", editing.note if editing else ""))
    enabled = c3.toggle("Enabled", key=_forms.seed(f"{prefix}:enabled", editing.enabled if editing else True))
    a, b = st.columns([1, 5])
    if a.button("Apply to draft", type="primary", key=f"{prefix}:apply") and scope is not None:
        try:
            rule = Rule(rule_id.strip(), kind.name, params, scope, starts, ends, enabled, note)
            new_draft = put_rule(draft, rule, replaces=editing.rule_id if editing else None)
        except (StudioError, ValueError) as exc:
            st.error(str(exc))
        else:
            verb = "Changed" if editing else "Added"
            changed(
                f"{verb} {rule.rule_id}: {rule.sentence()}. Applied to the draft; the preview uses it now.",
                new_draft,
                editing=None,
            )
    if editing is not None and b.button("Cancel", key=f"{prefix}:cancel"):
        changed(f"Left {editing.rule_id} as it was.", editing=None)

# --- save, discard --------------------------------------------------------------------------------
st.subheader("Save")
c1, c2, c3 = st.columns([3, 1, 1])
note = c1.text_input("Note for this version", placeholder="why this change", key="version_note")
if c2.button("Save as new version", type="primary", width="stretch"):
    try:
        saved = save_rule_set(draft, expected_version=draft.version, actor=actor, note=note)
    except StudioError as exc:
        st.error(str(exc))
    else:
        changed(f"Saved as version {saved.version}.", saved)
if c3.button("Discard draft", width="stretch", help="reload the latest saved version"):
    changed(f"Discarded the draft: back to saved version {latest.version}.", latest, editing=None)

# --- history --------------------------------------------------------------------------------------
st.subheader("Version history")
versions = list_versions()
if versions.is_empty():
    st.caption("No saved version yet.")
else:
    st.dataframe(versions, hide_index=True, width="stretch")
    v = st.selectbox("Version", versions["version"].to_list(), key="history_version")
    shown = load_rule_set(version=v)
    before = load_rule_set(version=v - 1) if v > 1 else shown.with_rules([])
    st.markdown(f"**Version {v} against version {v - 1}:** {diff(before, shown).summary()}")
    st.markdown("\n".join(f"- {line}" for line in diff(before, shown).lines()) or "—")
    st.markdown(f"**The draft against version {v}:** {diff(shown, draft).summary()}")
    if st.button(f"Restore version {v} as draft"):
        changed(
            f"Version {v} restored as the draft: save it to make it the latest version.",
            restore_as_draft(v),
            editing=None,
        )

# --- impact ---------------------------------------------------------------------------------------
st.subheader("Impact on a sample of shoppers")
n = st.slider("Sample size", min_value=50, max_value=2000, value=500, step=50)
if st.button("Measure impact"):
    with st.spinner(f"Building {n} homepages with and without the draft…"):
        try:
            ss["impact"] = rule_set_impact(draft, n_users=n)
        except StudioError as exc:
            st.error(str(exc))
impact = ss.get("impact")
if impact is not None:
    st.caption(f"{impact.users} shoppers; {impact.conflicts} homepages had a rule conflict.")
    st.caption(f"Protected: {impact.protected}.")
    cols = st.columns(len(impact.summary))
    for col, m in zip(cols, impact.summary.to_dicts()):
        value = "—" if m["with rules"] is None else f"{m['with rules']:.3f}"
        delta = None if m["delta"] is None else f"{m['delta']:+.3f} vs model only"
        col.metric(
            m["label"],
            value,
            delta,
            delta_color="normal" if m["higher_is_better"] else "inverse",
            help=m["meaning"],
        )
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

# --- advanced: the same draft as a table ------------------------------------------------------------
with st.expander("Advanced: the draft as a table"):
    st.caption(
        "Each kind writes and reads its own row: target, value, slot, and options (name=value;…). "
        "A blank cell is the kind's default."
    )
    grid = st.data_editor(
        rules_to_frame(draft).to_pandas(),
        num_rows="dynamic",
        width="stretch",
        column_config={
            "kind": st.column_config.SelectboxColumn("kind", options=list(kinds.names()), required=True)
        },
        key=f"grid:{hash(draft.content())}",
    )
    if st.button("Apply the table to the draft"):
        try:
            new_draft = apply_edits(draft, grid)
        except StudioError as exc:
            st.error(str(exc))
        else:
            changed(
                f"Applied the table to the draft ({diff(draft, new_draft).summary()}).",
                new_draft,
                editing=None,
            )
