"""Quality report and features on tiny hand-made logs with known answers."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.data import features
from core.data.ingest import ingest_catalog, ingest_events
from core.data.quality import quality_report
from core.release.roles import SYSTEM

LOG = """ts,user_id,item_id,event_type,session_id,position
2024-05-01 10:00:00,a,i1,view,,1
2024-05-01 10:00:30,a,i1,click,,1
2024-05-01 10:05:00,a,i2,view,,2
2024-05-01 10:40:00,a,i3,view,,
2024-05-01 10:41:00,a,i3,add_to_cart,,
2024-05-01 10:42:00,a,i3,purchase,,
2024-05-01 09:00:00,b,i1,view,sb,3
2024-05-01 11:00:00,b,i2,view,sb,
"""

CATALOG = (
    "item_id,title,category,brand,price\ni1,One,home.kitchen,x,10\ni2,Two,home.garden,y,11\n"
    "i3,Three,toys.lego,z,12\ni4,Four,home.bath,x,13\ni5,Gold tap,home.bath,x,1000\n"
    "i6,Six,home.bath,x,12\ni7,Seven,home.bath,x,11\ni8,Eight,home.bath,x,10\ni9,Nine,home.bath,x,14\n"
)


@pytest.fixture
def shop(db, tmp_path):
    (tmp_path / "items.csv").write_text(CATALOG)
    ingest_catalog(tmp_path / "items.csv", db_path=db, actor=SYSTEM)
    (tmp_path / "log.csv").write_text(LOG)
    ingest_events(tmp_path / "log.csv", db_path=db, actor=SYSTEM)
    return db


def test_sessions_split_at_30_minutes_unless_given(shop):
    s = features.sessions(db_path=shop).sort("started")
    assert s.filter(s["user_id"] == "a")["events"].to_list() == [3, 3]
    b = s.filter(s["user_id"] == "b")
    assert b["events"].to_list() == [2] and b["session"][0] == "sb"  # a given session id wins over the gap
    assert s.filter(s["user_id"] == "a")["purchased"].to_list() == [False, True]


def test_dwell_capped(shop):
    d = features.dwell_times(cap_ms=60_000, db_path=shop)
    got = {(r["user_id"], r["event_type"], r["item_id"]): r["dwell_ms"] for r in d.to_dicts()}
    assert got[("a", "view", "i1")] == 30_000
    assert got[("a", "click", "i1")] == 60_000  # 4.5 min, capped
    assert got[("b", "view", "i1")] == 60_000  # 2 h, capped
    assert ("a", "view", "i2") not in got  # last event of its session: no next event
    assert got[("a", "view", "i3")] == 60_000 and got[("a", "add_to_cart", "i3")] == 60_000


def test_funnel_positions_paths_stats(shop):
    f = features.funnel(db_path=shop)
    assert dict(zip(f["step"], f["events"])) == {"view": 5, "click": 1, "add_to_cart": 1, "purchase": 1}
    assert f.filter(f["step"] == "purchase")["share_of_views"][0] == pytest.approx(0.2)
    by_cat = {r["category"]: r for r in features.funnel(by="category", db_path=shop).to_dicts()}
    assert by_cat["home"]["views"] == 4 and by_cat["toys"]["purchases"] == 1
    pos = {r["position"]: r for r in features.click_positions(db_path=shop).to_dicts()}
    assert pos[1]["clicks"] == 1 and pos[1]["views"] == 1 and pos[2]["clicks"] == 0
    paths = features.browse_paths(db_path=shop)
    top = {(r["from_node"], r["to_node"]): r["transitions"] for r in paths.to_dicts()}
    assert top[("i1", "i2")] == 2  # a: click i1 → view i2; b: view i1 → view i2
    cats = features.browse_paths(level="category", db_path=shop)
    assert ("home.kitchen", "home.garden") in {(r["from_node"], r["to_node"]) for r in cats.to_dicts()}
    users = {r["user_id"]: r for r in features.user_stats(db_path=shop).to_dicts()}
    assert users["a"]["events"] == 6 and users["a"]["purchases"] == 1 and users["b"]["items"] == 2
    items = features.item_stats(db_path=shop)
    assert items["item_id"][0] == "i1" and items["events"][0] == 3 and items["popularity_rank"][0] == 1
    o = features.overview_stats(db_path=shop)
    assert (o["events"], o["users"], o["items"]) == (8, 2, 9)
    assert o["first_event"] == datetime(2024, 5, 1, 9) and o["last_event"] == datetime(2024, 5, 1, 11)
    assert o["sessions"] == 3
    assert dict(zip(o["by_type"]["event_type"], o["by_type"]["events"]))["view"] == 5


def test_quality_report_finds_bot_future_unknown_and_outliers(shop, tmp_path):
    bot = "\n".join(
        f"2024-05-02 12:00:{s:02d},bot,i{1 + s % 4},view,,,{'' if s else 5_000_000}" for s in range(40)
    )
    extra = (
        "ts,user_id,item_id,event_type,session_id,position,dwell_ms\n" + bot + "\n"
        "2099-01-01 00:00:00,c,i1,view,,,\n2024-05-03 08:00:00,c,ghost,view,,,\n"
        "2024-05-03 08:00:00,c,ghost,view,,,\n2024-05-03 08:01:00,c,i1,clik,,,\n"
    )
    (tmp_path / "extra.csv").write_text(extra)
    r = ingest_events(tmp_path / "extra.csv", db_path=shop, actor=SYSTEM)
    assert (r.duplicates, r.rejected) == (1, 1)
    q = quality_report(db_path=shop, bot_events_per_minute=30, now=datetime(2026, 1, 1))
    assert q.bots["user_id"].to_list() == ["bot"] and q.bots["peak_per_minute"][0] == 40
    assert q.future_events == 1
    assert q.unknown_items == 1  # the ghost item: created by the log, no catalog attributes
    assert q.duplicates_removed == 1 and q.rejected == 1
    assert "clik" not in q.rejects_by_reason["reason"][0]  # grouped by reason, values masked
    assert q.rejects_by_reason["rows"][0] == 1
    assert q.price_outliers["item_id"].to_list() == ["i5"]
    assert q.dwell_outliers == 1
    missing = dict(zip(q.missing["column"], q.missing["missing"]))
    assert missing["session_id"] == q.events - 2  # only b's two events carry a session id
    text = q.to_text()
    assert "suspected bots" in text and "bot: 40 events/min" in text and "in the future: 1" in text
