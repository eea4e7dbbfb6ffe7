"""A shopper's distinct recent interests, from hand-built histories with known answers."""

import numpy as np
import pytest

from core.ranking.interests import RECENT_DAYS, interest_name, recent_interests

DAY = 86400.0
NOW = 100 * DAY
VIEW, PURCHASE = 1, 5
CATEGORIES = np.array(
    [
        "unknown",
        "electronics.computers.keyboards",  # 1
        "electronics.computers.mice",  # 2
        "electronics.audio.speakers",  # 3
        "garden.plants.plant_pots",  # 4
        "home.decor.rugs",  # 5
        "fashion.men.sneakers",  # 6
        "fashion.men.watches",  # 7
        "fashion.men.belts",  # 8
    ],
    dtype=object,
)


def interests(steps):
    """``steps``: (item, event, days before the shop clock), in time order."""
    items, events, days = (np.array(x) for x in zip(*steps))
    return recent_interests(items, events, NOW - days * DAY, CATEGORIES, NOW)


@pytest.fixture(scope="module")
def three():
    # keyboards and speakers viewed often, plant pots bought, then one rug view: the rug is the fourth
    return interests(
        [(1, VIEW, 5), (1, VIEW, 5), (1, VIEW, 4), (3, VIEW, 4), (3, VIEW, 3), (4, PURCHASE, 3), (5, VIEW, 0)]
    )


def test_three_interests_at_most(three):
    assert len(three) == 3


def test_the_heaviest_interest_comes_first(three):
    assert [i.name for i in three] == ["plant pots", "keyboards", "speakers"]


def test_a_purchase_makes_a_because_you_bought_title(three):
    assert three[0].title == "Because you bought plant pots"


def test_a_viewed_interest_says_viewed(three):
    assert three[1].title == "Because you viewed keyboards"


def test_an_interest_holds_its_items_once(three):
    assert three[1].items == (1,)


def test_steps_older_than_the_window_make_no_interest():
    assert interests([(1, VIEW, RECENT_DAYS + 1), (3, VIEW, 1)])[0].name == "speakers"


def test_two_leaves_of_one_interest_are_named_together():
    assert interests([(1, VIEW, 2), (1, VIEW, 2), (2, VIEW, 1)])[0].name == "keyboards and mice"


def test_more_leaves_name_the_two_heaviest_and_more():
    found = interests([(6, VIEW, 1), (6, VIEW, 1), (7, VIEW, 1), (8, VIEW, 2)])
    assert found[0].name == "sneakers, watches and more"


def test_unknown_categories_make_no_interest():
    assert interests([(0, VIEW, 1)]) == []


def test_an_interest_without_leaves_is_named_by_its_path():
    assert interest_name("garden.plants", []) == "plants"
