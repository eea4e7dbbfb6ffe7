"""A visit's events become steps exactly as core.data.sequences makes them from the store: consecutive
events on one item are one step at its strongest type, remove-from-cart counts as a cart step, the
step keeps its first time, and at most 200 steps are kept."""

import numpy as np
import pytest

from core.serve.visit import MAX_STEPS, append_steps
from models.base import EVENT_TYPES

VIEW, CLICK, CART, REMOVE, BUY = (
    EVENT_TYPES[n] for n in ("view", "click", "add_to_cart", "remove_from_cart", "purchase")
)


def arrays(*values, dtype=np.int64):
    return np.array(values, dtype=dtype)


def steps(items, codes, ts):
    return arrays(*items), arrays(*codes), arrays(*ts, dtype=np.float64)


def test_new_events_on_new_items_are_new_steps():
    items, codes, ts = append_steps(
        *steps([1, 2], [VIEW, VIEW], [10, 20]), *steps([3, 4], [CLICK, VIEW], [30, 40])
    )
    assert items.tolist() == [1, 2, 3, 4]
    assert codes.tolist() == [VIEW, VIEW, CLICK, VIEW]
    assert ts.tolist() == [10, 20, 30, 40]


def test_an_event_on_the_last_steps_item_joins_it_at_the_stronger_type():
    items, codes, ts = append_steps(
        *steps([1, 2], [VIEW, VIEW], [10, 20]), *steps([2, 2], [CART, CLICK], [30, 35])
    )
    assert items.tolist() == [1, 2]
    assert codes.tolist() == [VIEW, CART]
    assert ts.tolist() == [10, 20]  # the step keeps its first time


def test_remove_from_cart_is_a_cart_step():
    _, codes, _ = append_steps(*steps([], [], []), *steps([5, 6, 6], [REMOVE, VIEW, REMOVE], [1, 2, 3]))
    assert codes.tolist() == [CART, CART]


def test_a_purchase_outranks_a_removal():
    _, codes, _ = append_steps(*steps([5], [BUY], [1]), *steps([5], [REMOVE], [2]))
    assert codes.tolist() == [BUY]


def test_events_older_than_the_snapshot_read_as_its_last_time():
    _, _, ts = append_steps(*steps([1], [VIEW], [100]), *steps([2], [VIEW], [50]))
    assert ts.tolist() == [100, 100]


@pytest.mark.parametrize("old", [MAX_STEPS - 1, MAX_STEPS])
def test_at_most_200_steps_are_kept_the_latest(old):
    items, _, _ = append_steps(
        *steps(range(1, old + 1), [VIEW] * old, range(old)),
        *steps([9999, 9998], [VIEW, VIEW], [1e6, 1e6 + 1]),
    )
    assert len(items) == MAX_STEPS
    assert items[-2:].tolist() == [9999, 9998]
