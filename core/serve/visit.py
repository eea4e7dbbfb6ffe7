"""This visit's behaviour on top of the release's snapshot: the shopper's recent events (not yet in the
snapshot) and the device they use now.

``visit_context(ctx, user_id, events, device)`` returns a view of the release's ``ShopContext`` in which
this one shopper's steps are the snapshot's plus the new events, collapsed exactly as
``core.data.sequences`` makes steps (consecutive events on one item are one step at its strongest type;
remove-from-cart counts as a cart step), and their ``device`` attribute is the one given. Everything else
is the release's own objects, shared, never copied or changed: the ranking code then runs unchanged, so the
model's state is recomputed over snapshot + new events, and the rows per interest follow the new steps.
"""

from __future__ import annotations

import dataclasses
from collections import ChainMap
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from core.data.sequences import ShopSequences, gap_buckets
from core.errors import InputError
from core.ranking.shop import ShopContext
from models.base import EVENT_TYPES

MAX_EVENTS = 50  # recent events one request may carry ("the last 20 clicks of this visit", with room)
MAX_STEPS = 200  # steps kept per shopper, as the snapshot keeps them (core.data.sequences.read_steps)
# what a visit may report: every event type that makes a step (reviews do not: read_steps leaves them out)
VISIT_EVENT_TYPES = ("view", "click", "add_to_cart", "remove_from_cart", "purchase")
REMOVE_FROM_CART, ADD_TO_CART = EVENT_TYPES["remove_from_cart"], EVENT_TYPES["add_to_cart"]


@dataclass(frozen=True)
class VisitEvent:
    """One event of this visit: which item, what happened, when (aware, or naive UTC)."""

    item_id: str
    event_type: str
    ts: datetime


def _epoch(t: datetime) -> float:
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def encode_events(ctx: ShopContext, events: list[VisitEvent]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dense ids, event codes, epoch seconds) of the events in time order (equal times: as sent); an item
    the release does not know or an event type that makes no step is an InputError naming the event."""
    if len(events) > MAX_EVENTS:
        raise InputError(
            f"{len(events)} events; at most {MAX_EVENTS} per request", fix="send the latest only"
        )
    index = ctx.active.catalog.vocab.index
    for n, e in enumerate(events):
        if e.event_type not in VISIT_EVENT_TYPES:
            raise InputError(
                f"events[{n}].event_type '{e.event_type}' is not one of {', '.join(VISIT_EVENT_TYPES)}"
            )
        if str(e.item_id) not in index:
            raise InputError(
                f"events[{n}].item_id '{e.item_id}' is not in this release's catalog",
                fix="send item ids the storefront got from this API",
            )
    ts = np.array([_epoch(e.ts) for e in events], dtype=np.float64)
    order = np.argsort(ts, kind="stable")
    items = np.array([index[str(e.item_id)] for e in events], dtype=np.int64)[order]
    codes = np.array([EVENT_TYPES[e.event_type] for e in events], dtype=np.int64)[order]
    return items, codes, ts[order]


def append_steps(
    items: np.ndarray,
    codes: np.ndarray,
    ts: np.ndarray,
    new_items: np.ndarray,
    new_codes: np.ndarray,
    new_ts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A shopper's steps (time order) followed by newer events, as steps: an event on the item of the step
    before it joins that step (the stronger type wins, the step keeps its first time). Events are taken as
    newer than the snapshot: a time before its last step reads as that step's time."""
    out_items, out_codes, out_ts = list(items), list(codes), list(ts)
    latest = out_ts[-1] if out_ts else -np.inf
    for item, code, t in zip(new_items.tolist(), new_codes.tolist(), new_ts.tolist()):
        t = max(t, latest)
        latest = t
        if out_items and out_items[-1] == item:
            strongest = max(out_codes[-1], code)
            out_codes[-1] = ADD_TO_CART if strongest == REMOVE_FROM_CART else strongest
            continue
        out_items.append(item)
        out_codes.append(ADD_TO_CART if code == REMOVE_FROM_CART else code)
        out_ts.append(t)
    keep = slice(max(0, len(out_items) - MAX_STEPS), None)
    return (
        np.array(out_items[keep], dtype=np.int64),
        np.array(out_codes[keep], dtype=np.int64),
        np.array(out_ts[keep], dtype=np.float64),
    )


def visit_steps(ctx: ShopContext, user_id: str, events: list[VisitEvent]) -> ShopSequences:
    """One shopper's steps: the snapshot's, then this visit's events."""
    row = ctx.by_user.get(user_id)
    steps = ctx.steps
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    old = empty if row is None else (steps.items[row], steps.event_types[row], steps.ts[row])
    items, codes, ts = append_steps(*old, *encode_events(ctx, events))
    return ShopSequences([user_id], [items], [codes], [gap_buckets(ts)], [ts], steps.catalog)


def visit_context(
    ctx: ShopContext, user_id: str, events: list[VisitEvent] | None = None, device: str | None = None
) -> ShopContext:
    """The release's snapshot as this shopper sees it on this visit (the snapshot itself when neither
    events nor a device are given). Only this shopper's entries differ; nothing shared is changed."""
    user_id = str(user_id)
    changes: dict = {}
    if events:
        changes["steps"] = visit_steps(ctx, user_id, events)
        changes["by_user"] = {user_id: 0}
    if device is not None:
        attrs = {"user_id": user_id, **ctx.users.get(user_id, {}), "device": device}
        changes["users"] = ChainMap({user_id: attrs}, ctx.users)
    return dataclasses.replace(ctx, **changes) if changes else ctx
