"""The storefront API in process (FastAPI's TestClient) over a published copy of the demo shop: it agrees
with the preview slot for slot, never opens the database, answers errors with messages, changes nothing,
and applies the release's rules on every surface."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

import duckdb
import polars as pl
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from core.ranking import rows
from core.ranking.homepage import homepages_for
from core.ranking.impact import sample_users
from core.ranking.rule_sets import load_rule_set
from core.ranking.rules import RuleSet
from core.release.artifact import open_live
from core.serve import schemas
from core.serve.api import create_app
from core.serve.live import LiveRelease
from core.serve.visit import MAX_EVENTS
from tests.conftest import using_data

UNKNOWN = "no-such-shopper-zz"


@pytest.fixture(scope="module")
def client(released):
    data, _ = released
    with using_data(data), TestClient(create_app(LiveRelease(data / "releases"), watch=False)) as c:
        yield c


def for_you(response) -> list[tuple[str, list[str]]]:
    """(item id, reason codes) per For-you slot of an API homepage."""
    return [
        (s["item_id"], [r["code"] for r in s["reasons"]])
        for s in response.json()["slots"]
        if s["row"] == "for_you"
    ]


def row_items(response, row: str) -> list[str]:
    return [s["item_id"] for s in response.json()["slots"] if s["row"] == row]


@pytest.mark.slow
def test_the_api_and_the_preview_agree_slot_for_slot_on_200_shoppers(released, client):
    users = [*sample_users(200, seed=5), UNKNOWN]
    draft = load_rule_set()  # the dashboard's draft: the saved version the live release was made from
    assert draft.content() == client.app.state.live.current().rule_set.content()
    preview = homepages_for(users, draft)
    api = [client.get(f"/v1/homepage/{u}", params={"row_k": 0}) for u in users]
    assert all(r.status_code == 200 for r in api)
    assert [for_you(r) for r in api] == [
        [(s.item_id, [c.value for c in s.codes]) for s in view.ruled.slots] for view in preview
    ]
    assert {r.json()["release_id"] for r in api} == {2}


def test_the_other_rows_are_the_previews_rows(released, client):
    draft = load_rule_set()
    for user in sample_users(8, seed=6):
        page = client.get(f"/v1/homepage/{user}")
        interests = rows.rows_per_interest(user, rule_set=draft)
        expected = {
            **{f"interest_{i}": interests[i - 1] if i <= len(interests) else None for i in (1, 2, 3)},
            "trending": rows.trending_in_top_category(user, rule_set=draft),
            "deals": rows.deals_for_you(user, rule_set=draft),
        }
        for name, row in expected.items():
            want = [] if row is None else row.items["item_id"].to_list()
            assert row_items(page, name) == want, (user, name)


def test_the_rules_hold_on_every_surface(released, client):
    _, named = released
    blocked = named["blocked"]
    user = sample_users(1, seed=7)[0]
    page = client.get(f"/v1/homepage/{user}", params={"row_k": 24}).json()
    assert page["slots"][0]["item_id"] == named["pinned"]
    assert page["slots"][0]["reasons"][0]["code"] == "pin.pinned"
    assert blocked not in {s["item_id"] for s in page["slots"]}
    # without the rules, the blocked item is the first similar item of its own nearest item, and found
    # by a word of its title
    nearest = rows.similar_items(blocked, rule_set=RuleSet()).items["item_id"][0]
    assert blocked in rows.similar_items(nearest, rule_set=RuleSet()).items["item_id"].to_list()
    brand = open_live()[1].table("items").filter(pl.col("item_id") == blocked)["brand"][0]
    assert blocked in rows.personalized_search(user, brand, k=48, rule_set=RuleSet()).items["item_id"]
    similar = client.get(f"/v1/similar/{nearest}").json()["slots"]
    found = client.get("/v1/search", params={"q": brand, "k": 48, "user_id": user}).json()["slots"]
    assert blocked not in {s["item_id"] for s in similar}
    assert blocked not in {s["item_id"] for s in found}


def test_every_answer_carries_its_release_id(client):
    for path in ("/v1/homepage/u000001", f"/v1/homepage/{UNKNOWN}", "/v1/release", "/v1/search?q=a"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["X-Release-Id"] == str(r.json()["release_id"]) == "2"


def _fields(model: type[BaseModel], value) -> set[str]:
    """Every key of ``value`` (nested through the model's object fields) not declared by ``model``."""
    extra = set(value) - set(model.model_fields)
    for name, field in model.model_fields.items():
        inner = get_args(field.annotation)[0] if get_args(field.annotation) else field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel) and value.get(name) is not None:
            items = value[name] if isinstance(value[name], list) else [value[name]]
            extra |= {f"{name}.{k}" for v in items for k in _fields(inner, v)}
    return extra


@pytest.mark.parametrize(
    "method, path, model",
    [
        ("GET", "/v1/homepage/u000001", schemas.HomepageOut),
        ("POST", "/v1/homepage/u000001", schemas.HomepageOut),
        ("GET", "/v1/similar/{item}", schemas.SimilarOut),
        ("GET", "/v1/search?q=a&user_id=u000001", schemas.SearchOut),
        ("GET", "/v1/release", schemas.ReleaseOut),
    ],
)
def test_answers_have_exactly_the_documented_shape(client, method, path, model):
    """The answers are returned as built (no per-request pydantic pass): they must still be the schema's."""
    item = client.get("/v1/homepage/u000001").json()["slots"][0]["item_id"]
    body = {"events": [{"item_id": item, "event_type": "view"}]} if method == "POST" else None
    r = client.request(method, path.format(item=item), json=body)
    assert r.status_code == 200, r.text
    model.model_validate(r.json(), strict=False)
    assert _fields(model, r.json()) == set()


def test_an_unknown_shopper_gets_the_cold_start_homepage(client):
    page = client.get(f"/v1/homepage/{UNKNOWN}").json()
    assert page["known_shopper"] is False
    assert page["source"].startswith("fallback: popular")
    assert len([s for s in page["slots"] if s["row"] == "for_you"]) == 24


def test_unknown_items_are_404_with_a_message(client):
    r = client.get("/v1/similar/no-such-item")
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "message": "item 'no-such-item' is not in the catalog"}


@pytest.mark.parametrize(
    "path, params, says",
    [
        ("/v1/homepage/u1", {"k": 0}, "query.k: Input should be greater than or equal to 1"),
        ("/v1/homepage/u1", {"k": 49}, "query.k: Input should be less than or equal to 48"),
        ("/v1/homepage/u1", {"k": "many"}, "query.k: Input should be a valid integer"),
        ("/v1/homepage/u1", {"device": "a phone!"}, "query.device: String should match pattern"),
        ("/v1/search", {"q": "   "}, "query.q: String should match pattern"),
        ("/v1/search", {}, "query.q: Field required"),
        ("/v1/similar/i1", {"k": 100}, "query.k: Input should be less than or equal to 48"),
    ],
)
def test_bad_parameters_are_422_with_a_message(client, path, params, says):
    r = client.get(path, params=params)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"
    assert r.json()["message"].startswith(says)


def item_ids(client, n: int) -> list[str]:
    return [s["item_id"] for s in client.get("/v1/search", params={"q": "e", "k": n}).json()["slots"]]


@pytest.mark.parametrize(
    "events, says",
    [
        ([{"item_id": "no-such-item"}], "events[0].item_id 'no-such-item' is not in this release's catalog"),
        ([{"item_id": "i1", "event_type": "review"}], "events.0.event_type: Input should be 'view'"),
        ([{"item_id": "i1", "ts": "yesterday"}], "events.0.ts: Input should be a valid datetime"),
        ([{"item_id": "i1"}] * (MAX_EVENTS + 1), f"events: List should have at most {MAX_EVENTS} items"),
    ],
)
def test_bad_events_are_422_with_a_message(client, events, says):
    r = client.post("/v1/homepage/u000001", json={"events": events})
    assert r.status_code == 422
    assert r.json()["message"].startswith(says)


def test_a_request_changes_nothing(client):
    user = sample_users(1, seed=8)[0]
    before = client.get(f"/v1/homepage/{user}").json()
    events = [{"item_id": i, "event_type": "click"} for i in item_ids(client, 5)]
    during = client.post(f"/v1/homepage/{user}", json={"events": events}, params={"device": "tablet"}).json()
    assert during["events_applied"] == 5
    assert during["slots"] != before["slots"]
    assert client.get(f"/v1/homepage/{user}").json() == before


def test_a_new_visitors_events_replace_the_cold_start(client):
    viewed = item_ids(client, 1)[0]
    page = client.post(f"/v1/homepage/{UNKNOWN}", json={"events": [{"item_id": viewed}]}).json()
    assert not page["source"].startswith("fallback")
    assert page["rows"][1]["row"] == "interest_1"


def test_the_interest_rows_follow_this_visits_views(client):
    """A new visitor's views become "Because you viewed …" rows at once, without the viewed items."""
    first, latest = item_ids(client, 2)
    start = datetime(2026, 10, 31, 12, tzinfo=UTC)
    events = [
        {"item_id": latest, "ts": (start + timedelta(minutes=1)).isoformat()},
        {"item_id": first, "ts": start.isoformat()},  # sent out of order: the times decide
    ]
    response = client.post(f"/v1/homepage/{UNKNOWN}", json={"events": events}).json()
    interest = response["rows"][1]
    assert interest["row"] == "interest_1"
    assert interest["title"].startswith("Because you viewed ")
    shown = [s["item_id"] for s in response["slots"] if s["row"] == "interest_1"]
    assert shown and not {first, latest} & set(shown)


def test_serving_never_opens_the_database(released, monkeypatch):
    data, _ = released

    def refuse(*args, **kwargs):
        raise AssertionError("the storefront API opened a DuckDB database")

    monkeypatch.setattr(duckdb, "connect", refuse)
    with using_data(data), TestClient(create_app(LiveRelease(data / "releases"), watch=False)) as c:
        user = "u000001"
        item = item_ids(c, 1)[0]
        for r in (
            c.get(f"/v1/homepage/{user}"),
            c.post(f"/v1/homepage/{user}", json={"events": [{"item_id": item}]}),
            c.get(f"/v1/similar/{item}"),
            c.get("/v1/search", params={"q": "e", "user_id": user}),
            c.get("/v1/release"),
            c.get("/healthz"),
            c.get("/metrics"),
        ):
            assert r.status_code == 200, r.text


def test_metrics_count_requests_and_name_the_release(client):
    client.get("/v1/homepage/u000001")
    text = client.get("/metrics").text
    assert 'hs_requests_total{method="GET",route="/v1/homepage/{user_id}",status="200"}' in text
    assert 'hs_request_seconds_bucket{le="0.05",route="/v1/homepage/{user_id}"}' in text
    assert "hs_release_id 2.0" in text


def test_a_repeated_get_is_answered_from_the_cache_with_the_same_bytes(client):
    params = {"k": 7, "row_k": 3}  # parameters no other test asks for: the first request is a miss
    first = client.get("/v1/homepage/u000002", params=params)
    before = client.get("/metrics").text
    second = client.get("/v1/homepage/u000002", params=params)
    after = client.get("/metrics").text
    hits = lambda text: float(text.split('hs_answer_cache_total{result="hit"} ')[1].split()[0])  # noqa: E731
    assert second.content == first.content
    assert second.headers["X-Release-Id"] == first.headers["X-Release-Id"]
    assert hits(after) == hits(before) + 1


def test_a_post_with_events_is_never_answered_from_the_cache(client):
    item = client.get("/v1/homepage/u000003").json()["slots"][0]["item_id"]
    visit = {"events": [{"item_id": item, "event_type": "view"}]}
    before = client.get("/metrics").text
    client.post("/v1/homepage/u000003", json=visit)
    after = client.get("/metrics").text
    lookups = lambda t: sum(
        float(line.split()[-1]) for line in t.splitlines() if line.startswith("hs_answer_cache_total")
    )  # noqa: E731
    assert lookups(after) == lookups(before)


def test_the_openapi_schema_is_served(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/homepage/{user_id}", "/v1/similar/{item_id}", "/v1/search", "/v1/release"} <= set(paths)
    assert {"get", "post"} == set(paths["/v1/homepage/{user_id}"])


def test_an_api_key_when_configured(released, monkeypatch):
    data, _ = released
    monkeypatch.setenv("HS_API_KEY", "s3cret-key")
    with using_data(data), TestClient(create_app(LiveRelease(data / "releases"), watch=False)) as c:
        assert c.get("/v1/release").status_code == 401
        assert c.get("/v1/release", headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/v1/release", headers={"X-API-Key": "s3cret-key"}).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_cors_is_off_unless_configured(released, monkeypatch):
    data, _ = released
    origin = {"Origin": "https://shop.example"}
    with using_data(data), TestClient(create_app(LiveRelease(data / "releases"), watch=False)) as c:
        assert "access-control-allow-origin" not in c.get("/v1/release", headers=origin).headers
    monkeypatch.setenv("HS_CORS_ORIGINS", "https://shop.example")
    with using_data(data), TestClient(create_app(LiveRelease(data / "releases"), watch=False)) as c:
        assert c.get("/v1/release", headers=origin).headers["access-control-allow-origin"] == origin["Origin"]


def test_healthz_names_the_served_release(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "release_id": 2, "error": None}


def test_nothing_published_is_503_with_a_message(tmp_path):
    with TestClient(create_app(LiveRelease(tmp_path / "releases"), watch=False)) as c:
        health, page = c.get("/healthz"), c.get("/v1/homepage/u000001")
    assert health.status_code == 503
    assert health.json()["status"] == "no_release"
    assert page.status_code == 503
    assert page.json()["message"].startswith("no release is live yet")


def test_similar_items_are_other_items_of_the_release(client):
    item = item_ids(client, 1)[0]
    r = client.get(f"/v1/similar/{item}", params={"k": 5})
    assert r.status_code == 200
    assert len(r.json()["slots"]) == 5
    assert item not in {s["item_id"] for s in r.json()["slots"]}


def test_the_release_endpoint_describes_what_is_served(client):
    info = client.get("/v1/release").json()
    assert (info["release_id"], info["kind"], info["rule_set"]["rules"]) == (2, "publish", 6)
