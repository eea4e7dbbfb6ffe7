"""A shopper's distinct recent interests: their recent history clustered by category, for the storefront's
rows per interest ("Because you viewed keyboards", "Because you bought plant pots").

An interest is the second level of a category path (``electronics.computers``): near enough to say what the
shopper looked at, wide enough to hold several items to rank. Each interest weighs its steps by what happened
(a purchase counts more than a view) and how recently; the heaviest ``MAX_INTERESTS`` become rows. Pure
functions over one shopper's arrays: no snapshot, no model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import category_paths
from models.base import EVENT_TYPES

MAX_INTERESTS = 3  # rows per interest on a storefront
RECENT_DAYS = 30  # the window of "recent" history, to the shop clock
HALF_LIFE_DAYS = 7.0  # a step's weight halves every week before the shop clock
# what a step says about the interest: a purchase or a cart counts more than a look
EVENT_WEIGHT = {EVENT_TYPES["purchase"]: 5.0, EVENT_TYPES["add_to_cart"]: 3.0}
PURCHASE = EVENT_TYPES["purchase"]


@dataclass(frozen=True)
class Interest:
    path: str  # the category path the interest covers (second level, or shorter when the path is)
    name: str  # in a merchandiser's words: "keyboards", "keyboards and mice", "sneakers, watches and more"
    bought: bool  # the shopper bought something in it (the row says "bought", else "viewed")
    items: tuple[int, ...]  # the shopper's items in it, dense ids, most recent first
    weight: float  # recency- and event-weighted steps: the order of the rows

    @property
    def title(self) -> str:
        return f"Because you {'bought' if self.bought else 'viewed'} {self.name}"


def interest_path(path: str | None) -> str:
    """The interest a category path belongs to: its first two levels (``a.b.c`` → ``a.b``)."""
    levels = category_paths.prefixes(path)
    return levels[min(1, len(levels) - 1)] if levels else category_paths.UNKNOWN


def words(path_part: str) -> str:
    """A category path's part as words: ``plant_pots`` → ``plant pots``."""
    return path_part.replace("_", " ").replace("-", " ").strip()


def interest_name(path: str, leaves: list[str]) -> str:
    """The interest's leaves (heaviest first) in words: "keyboards", "keyboards and mice", "sneakers, watches
    and more"; the interest's own name when it has no leaves. (A second level alone, such as "men", says
    too little.)"""
    named = [words(leaf) for leaf in leaves if words(leaf)]
    if not named:
        return words(category_paths.leaf(path))
    if len(named) <= 2:
        return " and ".join(named)
    return f"{named[0]}, {named[1]} and more"


def recent_interests(
    items: np.ndarray,  # (S,) dense item ids, time order
    events: np.ndarray,  # (S,) event codes
    ts: np.ndarray,  # (S,) epoch seconds
    categories: np.ndarray,  # (N+1,) leaf category path per dense id
    now_s: float,  # the shop clock, epoch seconds
    limit: int = MAX_INTERESTS,
) -> list[Interest]:
    """The shopper's heaviest distinct interests over the last ``RECENT_DAYS`` (heaviest first; ties: the
    most recent first). Steps without a known category make no interest."""
    age_days = (now_s - np.asarray(ts, dtype=np.float64)) / 86400.0
    recent = (age_days <= RECENT_DAYS) & (np.asarray(items) > 0)
    weight = np.array([EVENT_WEIGHT.get(int(e), 1.0) for e in events]) * 0.5 ** (
        np.maximum(age_days, 0.0) / HALF_LIFE_DAYS
    )
    groups: dict[str, dict] = {}
    for s in np.flatnonzero(recent)[::-1]:  # most recent first
        path = categories[int(items[s])]
        if not path or path == category_paths.UNKNOWN:
            continue
        g = groups.setdefault(interest_path(path), {"w": 0.0, "leaves": {}, "items": [], "bought": False})
        g["w"] += float(weight[s])
        leaf = category_paths.leaf(path)
        g["leaves"][leaf] = g["leaves"].get(leaf, 0.0) + float(weight[s])
        g["bought"] |= int(events[s]) == PURCHASE
        if int(items[s]) not in g["items"]:
            g["items"].append(int(items[s]))
    ranked = sorted(groups.items(), key=lambda kv: -kv[1]["w"])  # stable: ties keep the most recent first
    return [
        Interest(
            path,
            interest_name(path, sorted(g["leaves"], key=lambda leaf: -g["leaves"][leaf])),
            g["bought"],
            tuple(g["items"]),
            g["w"],
        )
        for path, g in ranked[:limit]
    ]
