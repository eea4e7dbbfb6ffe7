"""Real time: a visit's events reach the model at once. On a demo shop whose shoppers often follow a phone
with a case or a charger (its complementary leaves), a model trained on it, and a release of it: POSTing a
view of a phone moves phone accessories up that shopper's "For you" list."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.serve.api import create_app
from core.serve.live import LiveRelease
from tests.conftest import using_data

pytestmark = pytest.mark.slow
ACCESSORIES = ("electronics.phones.phone_cases", "electronics.phones.chargers")
K = 48


@pytest.fixture(scope="module")
def phone_shop(tmp_path_factory):
    """A small catalog (120 items: enough phone → accessory sequences per item to learn from) with an LSTM
    trained for 10 epochs and release 1 of it; yields an API client over that release."""
    from core.data.demo import build_demo_shop
    from core.model_runs import train_run
    from core.release import releases
    from core.release.roles import SYSTEM
    from models.lstm import LSTMConfig

    data = tmp_path_factory.mktemp("phones") / "data"
    with using_data(data):
        build_demo_shop(users=600, items=120, days=20, seed=3, actor=SYSTEM)
        train_run(actor=SYSTEM, time_budget_s=180, config=LSTMConfig(dim=32, max_epochs=10), activate=True)
        releases.publish(SYSTEM, "a model that has seen phones and their accessories", expected_head=None)
        with TestClient(create_app(LiveRelease(data / "releases"), watch=False)) as client:
            yield client


def accessories_in(page: dict) -> int:
    return sum(s["category"] in ACCESSORIES for s in page["slots"] if s["row"] == "for_you")


def test_a_phone_view_moves_its_accessories_up(phone_shop):
    ctx = phone_shop.app.state.live.current().ctx
    catalog = ctx.active.catalog.items
    phone = catalog.filter(catalog["category"] == "electronics.phones.smartphones")["item_id"][0]
    shoppers = sorted(ctx.by_user)[:12]
    before, after = [], []
    for user in shoppers:
        page = phone_shop.get(f"/v1/homepage/{user}", params={"k": K, "row_k": 0})
        visit = phone_shop.post(
            f"/v1/homepage/{user}", params={"k": K, "row_k": 0}, json={"events": [{"item_id": phone}]}
        )
        assert visit.json()["events_applied"] == 1
        before.append(accessories_in(page.json()))
        after.append(accessories_in(visit.json()))
    print("accessories in the top", K, "before", before, "after", after)
    assert sum(after) > sum(before)
    assert sum(a > b for a, b in zip(after, before)) >= len(shoppers) * 2 // 3
