"""The bias audit's "live" list comes from the live release's artifact (core.serve.context): the
storefront's homepages without a hold-out, the release's model and rules on the held-out histories with
one."""

from __future__ import annotations

import pytest

from core.errors import InputError
from core.insight.audit_population import audit_inputs, live_homepage_frame, live_release
from core.ranking.homepage import homepages_for
from core.ranking.impact import sample_users
from core.ranking.rule_sets import load_rule_set
from core.release.roles import SYSTEM
from tests.conftest import using_data


@pytest.fixture(scope="module")
def live(released):
    data, named = released
    with using_data(data):
        yield live_release(), named


def test_the_live_list_is_the_served_homepage(live):
    release, named = live
    users = sample_users(20, seed=3)
    frame = live_homepage_frame(users, k=24, release=release)
    served = homepages_for(users, release.rule_set, k=24, ctx=release.ctx)
    assert frame.rows() == [(v.user_id, s.slot, s.item_id) for v in served for s in v.ruled.slots]
    assert set(frame.filter(frame["rank"] == 1)["item_id"]) == {named["pinned"]}
    assert release.release_id == 2


def test_with_a_hold_out_live_is_ranked_on_the_held_out_histories(live):
    """The draft is the saved version release 2 was made from, with the same model: on the same held-out
    histories its lists and the live release's are the same lists."""
    release, _ = live
    assert load_rule_set().content() == release.rule_set.content()
    inputs = audit_inputs(("draft", "live"), sample=30, seed=1, actor=SYSTEM)
    assert inputs.homepages["live"].height == 30 * 24
    assert inputs.homepages["live"].equals(inputs.homepages["draft"])


def test_nothing_published_is_a_clear_error(tmp_path):
    with using_data(tmp_path / "data"), pytest.raises(InputError, match="no release is live yet"):
        live_release()
