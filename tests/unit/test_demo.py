"""The demo shop: deterministic, schema-true, with a funnel, complements and biases — and it loads."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import polars as pl
import pytest

from core.data import demo
from core.release.roles import SYSTEM
from models.base import EVENT_TYPES

SMALL = dict(users=300, items=200, days=10)
COLUMNS = {
    "events": [
        "ts", "user_id", "item_id", "event_type", "session_id", "dwell_ms", "position", "page", "price",
        "rating", "source",
    ],
    "items": ["item_id", "title", "category", "brand", "seller_id", "price", "image_url", "in_stock", "created_at"],
    "sellers": ["seller_id", "name", "tier", "onboarded_at"],
    "promotions": ["promotion_id", "item_id", "category", "discount", "starts_at", "ends_at"],
    "users": ["user_id", "first_seen", "region", "device", "segment"],
}  # fmt: skip


@pytest.fixture(scope="module")
def shop() -> dict[str, pl.DataFrame]:
    return demo.generate_demo(**SMALL, seed=7)


@pytest.fixture(scope="module")
def views(shop) -> pl.DataFrame:
    """Views in session order, with the item's leaf category."""
    leaf = shop["items"].select("item_id", pl.col("category").str.split(".").list.last().alias("leaf"))
    return (
        shop["events"]
        .filter(pl.col("event_type") == "view")
        .join(leaf, on="item_id")
        .sort("session_id", "ts", maintain_order=True)
    )


def test_same_seed_same_frames_and_bytes(shop, tmp_path):
    again = demo.generate_demo(**SMALL, seed=7)
    for name, frame in shop.items():
        assert frame.equals(again[name]), name
    a = demo.write_demo_files(shop, tmp_path / "a")
    b = demo.write_demo_files(again, tmp_path / "b")
    for name in shop:
        digest = [hashlib.sha256(p[name].read_bytes()).hexdigest() for p in (a, b)]
        assert digest[0] == digest[1], name
    other = demo.generate_demo(**SMALL, seed=8)
    assert not other["events"].equals(shop["events"])
    assert not other["items"].equals(shop["items"])


def test_columns_ids_and_window(shop):
    for name, columns in COLUMNS.items():
        assert shop[name].columns == columns, name
    ev = shop["events"]
    assert ev.schema["ts"] == pl.Datetime("us")
    assert ev["user_id"].str.contains(r"^u\d{6}$").all()
    assert ev["item_id"].str.contains(r"^i\d{5}$").all()
    assert shop["sellers"]["seller_id"].str.contains(r"^s\d{3}$").all()
    assert ev["session_id"].null_count() == 0
    assert set(ev["event_type"]) == set(EVENT_TYPES)  # every step of the funnel, in the one vocabulary
    assert set(ev["page"]) == set(demo.PAGES)
    assert ev["source"].unique().to_list() == ["demo"]
    assert ev["ts"].max() < demo.END and ev["ts"].min() >= demo.END - timedelta(days=SMALL["days"])
    pos = ev.filter(pl.col("event_type").is_in(["view", "click"]))["position"]
    assert pos.null_count() == 0 and pos.min() >= 1 and pos.max() <= 24
    dwell = ev.filter(pl.col("event_type") == "view")["dwell_ms"]
    assert dwell.null_count() == 0 and dwell.min() > 0
    assert set(ev["item_id"]) <= set(shop["items"]["item_id"])
    assert set(ev["user_id"]) <= set(shop["users"]["user_id"])


def test_nothing_before_it_exists(shop):
    ev = shop["events"].join(shop["items"].select("item_id", "created_at"), on="item_id")
    assert (ev["ts"] >= ev["created_at"]).all()  # no item seen before it was listed
    ev = ev.join(shop["users"].select("user_id", "first_seen"), on="user_id")
    assert (ev["ts"] >= ev["first_seen"]).all()
    new = shop["users"].filter(pl.col("segment") == "new")
    assert (new["first_seen"] >= demo.END - timedelta(days=SMALL["days"])).all()


def test_catalog_tree_brands_prices(shop):
    items = shop["items"]
    depth = items["category"].str.split(".").list.len()
    assert depth.min() >= 3
    assert len(demo.TREE) >= 10 and len(demo._leaves()[0]) >= 50
    assert items["category"].n_unique() >= 40
    assert items["price"].min() > 0 and items["price"].n_unique() > 150
    assert items["in_stock"].mean() > 0.85
    assert (items["created_at"] > demo.END - timedelta(days=14)).any()  # some new items
    top_brands = items.with_columns(top=pl.col("category").str.split(".").list.first()).group_by("brand")
    assert (top_brands.agg(pl.col("top").n_unique())["top"] == 1).all()  # brands belong to a top category
    for row in items.head(20).iter_rows(named=True):
        assert row["title"].startswith(row["brand"] + " ")


def test_tiers_large_sellers_own_most_items(shop):
    sellers = shop["sellers"]
    assert set(sellers["tier"]) == {"large", "small"}
    large = set(sellers.filter(pl.col("tier") == "large")["seller_id"])
    assert len(large) < len(sellers) / 4  # a few large ones
    assert shop["items"]["seller_id"].is_in(list(large)).mean() > 0.5
    recent = sellers.filter(pl.col("onboarded_at") > demo.END - timedelta(days=30))
    assert len(recent) >= 1 and set(recent["tier"]) == {"small"}


def test_users_and_promotions(shop):
    users = shop["users"]
    assert set(users["segment"]) == {"new", "returning", "vip"}
    assert set(users["region"]) == {"north", "south", "east", "west"}
    assert set(users["device"]) == {"mobile", "desktop", "tablet"}
    promos = shop["promotions"]
    assert 0 < promos["item_id"].drop_nulls().len() <= 0.1 * SMALL["items"]
    assert promos["discount"].is_between(0, 1, closed="none").all()
    assert (promos["item_id"].is_null() != promos["category"].is_null()).all()
    end = demo.END
    assert (promos["ends_at"] < end).any()  # ended
    assert ((promos["starts_at"] <= end) & (promos["ends_at"] > end)).any()  # active now
    assert (promos["starts_at"] > end).any()  # upcoming


def test_funnel_order_and_rates(shop):
    counts = dict(shop["events"]["event_type"].value_counts().iter_rows())
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > 0
    assert counts["remove_from_cart"] > 0 and counts["review"] > 0
    assert 0.2 < counts["click"] / counts["view"] < 0.5
    assert 0.003 < counts["purchase"] / counts["view"] < 0.08


def test_clicks_are_position_biased(shop):
    ev = shop["events"].filter(pl.col("event_type").is_in(["view", "click"]))
    by_pos = ev.group_by(pl.col("position") <= 3).agg((pl.col("event_type") == "click").mean().alias("ctr"))
    ctr = dict(by_pos.iter_rows())
    assert ctr[True] > 1.5 * ctr[False]


def test_complements_follow_more_than_chance(views):
    pairs = views.with_columns(
        prev=pl.col("leaf").shift(1).over("session_id"),
    ).drop_nulls("prev")
    pairs = pairs.filter(pl.col("prev").is_in(list(demo.COMPLEMENTS)))
    pairs = pairs.with_columns(target=pl.col("prev").replace_strict(demo.COMPLEMENTS))
    observed = (pairs["leaf"] == pairs["target"]).mean()
    share = dict(views["leaf"].value_counts(normalize=True).iter_rows())
    chance = sum(share.get(t, 0.0) for t in pairs["target"]) / len(pairs)
    assert len(pairs) > 200
    assert observed > 5 * chance, (observed, chance)


def test_reviews_follow_purchases_with_ratings(shop):
    ev = shop["events"]
    reviews = ev.filter(pl.col("event_type") == "review")
    assert len(reviews) > 0
    assert reviews["rating"].is_in([1.0, 2.0, 3.0, 4.0, 5.0]).all()
    assert ev.filter(pl.col("event_type") != "review")["rating"].null_count() == len(ev) - len(reviews)
    buys = ev.filter(pl.col("event_type") == "purchase").select(
        "user_id", "item_id", "session_id", bought="ts"
    )
    matched = reviews.join(buys, on=["user_id", "item_id", "session_id"], how="left")
    assert matched["bought"].null_count() == 0
    assert (matched["bought"] < matched["ts"]).all()


def test_small_sellers_and_new_items_get_less_exposure(shop):
    items = shop["items"].join(shop["sellers"].select("seller_id", "tier"), on="seller_id")
    v = shop["events"].filter(pl.col("event_type") == "view").join(items, on="item_id")
    per_item = v.group_by("item_id", "tier").agg(pl.len().alias("views"), pl.col("position").mean())
    full = items.select("item_id", "tier").join(per_item.drop("tier"), on="item_id", how="left").fill_null(0)
    exposure = dict(
        full.group_by("tier").agg(pl.col("views").median()).iter_rows()
    )  # popularity is heavy-tailed
    assert exposure["small"] < exposure["large"]
    new = full.join(items.select("item_id", "created_at"), on="item_id")
    new = dict(
        new.group_by(pl.col("created_at") > demo.END - timedelta(days=14))
        .agg(pl.col("views").median())
        .iter_rows()
    )
    assert new[True] < new[False]
    pos = dict(v.group_by("tier").agg(pl.col("position").mean()).iter_rows())
    assert pos["small"] > pos["large"]


def test_bad_sizes_raise():
    with pytest.raises(ValueError):
        demo.generate_demo(users=0, items=10, days=5)


def test_builds_through_ingest_with_counts_conserved(db, tmp_path):
    from core import store

    seen = []
    summary = demo.build_demo_shop(
        **SMALL,
        seed=7,
        out_dir=tmp_path / "demo",
        db_path=db,
        actor=SYSTEM,
        progress=lambda f, m="": seen.append(f),
    )
    frames = demo.generate_demo(**SMALL, seed=7)
    assert set(summary.files) == set(COLUMNS) and all(p.exists() for p in summary.files.values())
    assert summary.events == len(frames["events"])
    assert (summary.users, summary.items) == (SMALL["users"], SMALL["items"])
    for table in ("events", "items", "sellers", "promotions", "users"):
        assert store.scalar(f"SELECT count(*) FROM {table}", db_path=db) == len(frames[table]), table
    by_type = dict(store.query("SELECT event_type, count(*) FROM events GROUP BY 1", db_path=db).iter_rows())
    assert by_type == dict(frames["events"]["event_type"].value_counts().iter_rows())
    assert store.scalar("SELECT count(*) FROM rejects", db_path=db) == 0
    tiers = store.query("SELECT tier, count(*) FROM sellers GROUP BY 1", db_path=db)
    assert set(tiers["tier"]) == {"large", "small"}
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
