"""A rule's form, drawn from its kind's field descriptions (``core.ranking.kinds.base.Field``): an item picker,
a condition picker (items, categories, brands, sellers, seller tiers, price, new, promoted), choices,
numbers with their range, and the scope and time window every rule has. A blank field is the kind's default.

Widgets keep their state under ``prefix``: a new prefix is a fresh form, seeded once from the rule edited.
"""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from core.errors import StudioError
from core.ranking import choices
from core.ranking.conditions import Condition
from core.ranking.kinds.base import Field, Kind, Widget
from core.ranking.rules import Rule
from core.ranking.segments import Clause, build_segment, segment_clauses, user_list

SCOPES = ("All shoppers", "A segment", "A list of shoppers")
OPS = {"is one of": "in", "is not": "!="}
PROMOTED = {"either": None, "promoted": True, "not promoted": False}


def seed(key: str, value) -> str:
    """``key``, its state set to ``value`` the first time (a widget then starts from it)."""
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def item_picker(label: str, key: str, current: str | None) -> str | None:
    """One item: searched by title or id (promoted items marked), or picked from a running promotion."""
    how = st.radio(
        f"{label}: find it by",
        ["title or id", "promotion"],
        horizontal=True,
        key=seed(f"{key}:how", "title or id"),
    )
    if how == "promotion":
        promos = choices.promotions()
        if not promos:
            st.caption("No promotion is running now.")
            return current
        promo = st.selectbox("Promotion", promos, format_func=lambda p: p.label, key=f"{key}:promo")
        found = choices.items_by_id(list(promo.item_ids[: choices.SEARCH_LIMIT]))
    else:
        query = st.text_input(f"Search {label.lower()} by title or id", key=seed(f"{key}:q", current or ""))
        found = choices.search_items(query)
    options = [c.item_id for c in found]
    if current and current not in options:
        options = [current, *options]
    labels = {c.item_id: c.label for c in [*found, *choices.items_by_id([current] if current else [])]}
    if not options:
        st.caption("No item matches.")
        return None
    seed(f"{key}:item", current if current in options else options[0])
    if st.session_state[f"{key}:item"] not in options:
        st.session_state[f"{key}:item"] = options[0]
    return st.selectbox(label, options, format_func=lambda i: labels.get(i, i), key=f"{key}:item")


def _items_multi(key: str, current: list[str]) -> list[str]:
    query = st.text_input("Find items by title or id", key=seed(f"{key}:q", ""))
    found = choices.search_items(query) if query else []
    picked = st.session_state.get(f"{key}:items", list(current))
    labels = {c.item_id: c.label for c in [*choices.items_by_id(picked), *found]}
    options = list(dict.fromkeys([*picked, *labels]))
    seed(f"{key}:items", list(current))
    return st.multiselect("Items", options, format_func=lambda i: labels.get(i, i), key=f"{key}:items")


def condition_picker(label: str, key: str, current: Condition | None) -> dict:
    """Which items: every part optional; parts combine with AND, the values of one part with OR."""
    cond = current or Condition()
    values = choices.catalog_values()
    st.markdown(f"**{label}** — leave a part empty to not filter on it")
    out: dict = {"item_id": _items_multi(f"{key}:items", list(cond.item_id))}
    c1, c2 = st.columns(2)
    for col, name, title in ((c1, "category", "Categories"), (c2, "brand", "Brands")):
        given = list(vars(cond)[name])
        opts = sorted(set(values[name]) | set(given))
        out[name] = col.multiselect(title, opts, key=seed(f"{key}:{name}", given))
    c1, c2 = st.columns(2)
    out["seller_tier"] = c1.multiselect(
        "Seller tiers", values["seller_tier"], key=seed(f"{key}:tier", list(cond.seller_tier))
    )
    out["seller_id"] = c2.multiselect(
        "Sellers",
        sorted(set(values["seller_id"]) | set(cond.seller_id)),
        key=seed(f"{key}:seller", list(cond.seller_id)),
    )
    c1, c2, c3, c4 = st.columns(4)
    out["price_min"] = c1.number_input(
        "Price from", min_value=0.0, value=None, key=seed(f"{key}:pmin", cond.price_min)
    )
    out["price_max"] = c2.number_input(
        "Price up to", min_value=0.0, value=None, key=seed(f"{key}:pmax", cond.price_max)
    )
    out["new_days"] = c3.number_input(
        "New in the last (days)", min_value=0.0, value=None, key=seed(f"{key}:new", cond.new_days)
    )
    promoted = {v: k for k, v in PROMOTED.items()}[cond.promoted]
    out["promoted"] = PROMOTED[
        c4.selectbox("Promotion", list(PROMOTED), key=seed(f"{key}:promoted", promoted))
    ]
    return {k: v for k, v in out.items() if v not in (None, [], "")}


def number(field: Field, key: str, current) -> float | int | None:
    whole = field.widget is Widget.INTEGER
    cast = int if whole else float
    lo = None if field.lo is None or field.lo_open else cast(field.lo)
    hi = None if field.hi is None or field.hi_open else cast(field.hi)
    default = (
        "required"
        if field.required
        else "optional"
        if field.default is None
        else f"blank = {field.default:g}"
    )
    unit = f"in {field.unit}s" if field.unit in ("slot", "share") else field.unit
    help_text = " · ".join(x for x in (field.help, unit, f"range {field.range_text()}", default) if x)
    return st.number_input(
        field.label,
        min_value=lo,
        max_value=hi,
        value=None,
        step=1 if whole else 0.05,
        placeholder=default,
        help=help_text,
        key=seed(key, None if current is None else cast(current)),
    )


def field_input(field: Field, key: str, current):
    if field.widget is Widget.ITEM:
        return item_picker(field.label, key, current)
    if field.widget is Widget.CONDITION:
        return condition_picker(field.label, key, current)
    if field.widget is Widget.CHOICE:
        first = (
            current
            if current in field.options
            else field.default
            if field.default in field.options
            else field.options[0]
        )
        return st.selectbox(field.label, field.options, key=seed(key, first), help=field.help)
    return number(field, key, current)


def params_form(kind: Kind, prefix: str, rule: Rule | None) -> dict:
    """The kind's fields as widgets → raw parameters (blank fields left out: the kind's default)."""
    try:
        current = kind.values(rule.spec) if rule else {}
    except StudioError:  # an invalid saved rule: start from blank
        current = {}
    raw: dict = {}
    for field in kind.fields:
        if field.when and raw.get(field.when[0], kind.field(field.when[0]).default) != field.when[1]:
            continue
        value = field_input(field, f"{prefix}:{field.name}", current.get(field.name))
        if value is not None:
            raw[field.name] = value
    return raw


def scope_picker(prefix: str, current: str) -> str:
    """All shoppers, a segment (clauses on user attributes, or an expression), or a list of shopper ids."""
    ids = user_list(current)
    try:
        built = None if ids is not None or current == "all" else segment_clauses(current)
    except StudioError:  # an invalid saved scope: shown as text to fix
        built = None
    start = SCOPES[0] if current == "all" else SCOPES[2] if ids is not None else SCOPES[1]
    how = st.radio("Who sees this rule", SCOPES, horizontal=True, key=seed(f"{prefix}:scope", start))
    if how == SCOPES[0]:
        return "all"
    if how == SCOPES[2]:
        text = st.text_area(
            "Shopper ids (commas or lines)", key=seed(f"{prefix}:users", ", ".join(ids or []))
        )
        listed = [u.strip() for u in text.replace("\n", ",").split(",") if u.strip()]
        unknown = [u for u in listed if u not in set(choices.known_users(listed))]
        if unknown:
            st.caption(
                f"Not in the shop yet (the rule will reach them once they are): {', '.join(unknown[:10])}"
            )
        return "users: " + ", ".join(listed) if listed else "all"
    return segment_builder(prefix, current, built)


def segment_builder(prefix: str, current: str, built) -> str:
    attributes = choices.user_attributes()
    as_text = st.toggle(
        "Write the expression", key=seed(f"{prefix}:as_text", built is None and current != "all")
    )
    if as_text:
        return (
            st.text_input(
                "Segment expression",
                key=seed(f"{prefix}:expr", "" if current == "all" else current),
                help='attr == "v", attr != "v", attr in ["a", "b"], joined with and / or, parentheses',
            )
            or "all"
        )
    clauses, joiner = built if built else ([], "and")
    n = st.session_state.setdefault(f"{prefix}:n", max(1, len(clauses)))
    joiner = st.radio(
        "Shoppers matching",
        ["and", "or"],
        horizontal=True,
        key=seed(f"{prefix}:join", joiner),
        format_func=lambda j: "all of these" if j == "and" else "any of these",
    )
    out = []
    names = list(attributes)
    for i in range(n):
        c = clauses[i] if i < len(clauses) else None
        a, o, v = st.columns([2, 1, 3])
        attr = a.selectbox(
            "Attribute",
            names,
            key=seed(f"{prefix}:a{i}", c.attribute if c and c.attribute in names else names[0]),
        )
        was = "is not" if c and c.op == "!=" else "is one of"
        op = o.selectbox("Match", list(OPS), key=seed(f"{prefix}:o{i}", was))
        picked = v.multiselect(
            "Values", attributes.get(attr, []), key=seed(f"{prefix}:v{i}", list(c.values) if c else [])
        )
        if op == "is not" and len(picked) > 1:
            st.warning(f"'{attr} is not' takes one value: only {picked[0]} is used")
            picked = picked[:1]
        if picked:
            code = OPS[op] if op == "is not" or len(picked) > 1 else "=="
            out.append(Clause(attr, code, tuple(picked)))
    if st.button("+ another condition", key=f"{prefix}:more"):
        st.session_state[f"{prefix}:n"] = n + 1
        st.rerun()
    return build_segment(out, joiner)


def window_picker(prefix: str, rule: Rule | None) -> tuple[datetime | None, datetime | None]:
    starts, ends = (rule.starts_at, rule.ends_at) if rule else (None, None)
    if not st.toggle("Only during a time window", key=seed(f"{prefix}:window", bool(starts or ends))):
        return None, None
    c1, c2 = st.columns(2)
    return (
        c1.datetime_input("Starts (blank: now)", value=None, key=seed(f"{prefix}:starts", starts)),
        c2.datetime_input("Ends (blank: never)", value=None, key=seed(f"{prefix}:ends", ends)),
    )
