"""Ingestion: every format on a small fixture, auto-detection, duplicates, catalogs, whole-file errors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from core import store
from core.data.ingest import detect_format, ingest_catalog, ingest_events
from core.errors import InputError
from core.release.roles import SYSTEM

NATIVE = """ts,user_id,item_id,event_type,session_id,dwell_ms,position,page,price,rating,source
2024-05-01 10:00:00,u1,i1,view,s1,1200,1,home,9.99,,web
2024-05-01 10:00:05,u1,i1,click,s1,,1,"home, top row",9.99,,web
2024-05-01 10:01:00,u1,i1,add_to_cart,s1,,,,9.99,,web
2024-05-01 10:02:00,u1,i1,purchase,s1,,,,9.99,,web
2024-05-01 11:00:00,u2,i2,view,,300,2,search,5,,app
2024-05-02 09:00:00,u2,i2,review,,,,,,4,app
"""

REES46 = """event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
2019-10-01 00:00:17 UTC,view,23100006,2054,,,357.79,513642368,1756
2019-10-01 02:57:43 UTC,cart,4802036,2053,electronics.audio.headphone,apple,171.56,522027971,e937
2019-10-01 03:00:00 UTC,view,4802036,2053,electronics.audio.headphone,apple,180.00,513642368,1756
2019-10-01 03:05:00 UTC,remove_from_cart,4802036,2053,electronics.audio.headphone,apple,180.00,522027971,e937
2019-10-01 03:06:00 UTC,purchase,23100006,2054,,,350.00,522027971,e937
"""

RETAILROCKET = """timestamp,visitorid,event,itemid,transactionid
1433221332117,257597,view,355908,
1433224214164,992329,view,248676,
1433221999827,111016,addtocart,355908,
1433222276276,111016,transaction,355908,4000
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def count(table, db):
    return store.scalar(f"SELECT count(*) FROM {table}", db_path=db)


def test_native_csv(db, tmp_path):
    path = write(tmp_path, "log.csv", NATIVE)
    assert detect_format(path) == "native"
    r = ingest_events(path, db_path=db, actor=SYSTEM)
    assert (r.format, r.rows_read, r.loaded, r.rejected, r.duplicates) == ("native", 6, 6, 0, 0)
    assert "loaded 6" in r.summary()
    ev = store.query("SELECT * FROM events ORDER BY ts", db_path=db)
    assert ev["page"][1] == "home, top row"  # a quoted field with a comma
    assert ev["ts"][0] == datetime(2024, 5, 1, 10, 0)
    assert ev["dwell_ms"][0] == 1200 and ev["position"][0] == 1 and ev["price"][0] == 9.99
    assert ev["session_id"][4] is None and ev["source"][0] == "web"
    assert ev.filter(pl.col("event_type") == "review")["rating"][0] == 4
    users = store.query("SELECT * FROM users ORDER BY user_id", db_path=db)
    assert users["user_id"].to_list() == ["u1", "u2"]
    assert users["first_seen"][1] == datetime(2024, 5, 1, 11)
    assert sorted(store.query("SELECT item_id FROM items", db_path=db)["item_id"]) == ["i1", "i2"]
    ingests = store.query("SELECT * FROM ingests", db_path=db)
    assert ingests["status"][0] == "done" and ingests["loaded"][0] == 6 and ingests["kind"][0] == "events"
    assert len(ingests["sha256"][0]) == 64


def test_native_mapping_timezones_and_progress(db, tmp_path):
    path = write(
        tmp_path,
        "mapped.csv",
        "when,who,what,kind\n2024-01-01T10:00:00Z,a,x,view\n2024-01-01 12:00:01+02:00,a,y,click\n"
        "1704103200,b,x,cart\n",
    )
    with pytest.raises(InputError, match="ts"):
        ingest_events(path, "native", db_path=db, actor=SYSTEM)
    seen = []
    r = ingest_events(
        path,
        "native",
        db_path=db,
        mapping={"ts": "when", "user_id": "who", "item_id": "what", "event_type": "kind"},
        progress=lambda f, m="": seen.append(f),
        actor=SYSTEM,
    )
    assert r.loaded == 3
    assert seen and seen == sorted(seen) and seen[-1] == 1.0
    ts = store.query("SELECT event_type, ts FROM events", db_path=db)
    # Z, +02:00 and epoch seconds all become naive UTC; 'cart' is the alias of add_to_cart
    assert dict(ts.iter_rows()) == {
        "view": datetime(2024, 1, 1, 10),
        "click": datetime(2024, 1, 1, 10, 0, 1),
        "add_to_cart": datetime(2024, 1, 1, 10),
    }


def test_native_parquet_and_jsonl(db, tmp_path):
    frame = pl.read_csv(NATIVE.encode(), infer_schema_length=0)
    pq = tmp_path / "log.parquet"
    frame.write_parquet(pq)
    assert detect_format(pq) == "native"
    r = ingest_events(pq, db_path=db, actor=SYSTEM)
    assert (r.rows_read, r.loaded) == (6, 6)
    jl = tmp_path / "log.jsonl"
    rows = frame.with_columns(pl.col("user_id") + "j").to_dicts()
    rows[2]["event_type"] = "clik"
    jl.write_text(
        "\n".join(json.dumps({k: v for k, v in row.items() if v is not None}) for row in rows) + "\n{oops\n"
    )
    assert detect_format(jl) == "native"
    r = ingest_events(jl, db_path=db, actor=SYSTEM)
    assert (r.rows_read, r.loaded, r.rejected) == (7, 5, 2)
    rej = store.query(
        "SELECT line_no, reason FROM rejects WHERE ingest_id = ? ORDER BY line_no", [r.ingest_id], db_path=db
    )
    assert rej["line_no"].to_list() == [3, 7]
    assert "clik" in rej["reason"][0] and "JSON" in rej["reason"][1]
    assert count("events", db) == 11


def test_rees46_items_and_users(db, tmp_path):
    path = write(tmp_path, "2019-Oct.csv", REES46)
    assert detect_format(path) == "rees46"
    r = ingest_events(path, db_path=db, actor=SYSTEM)
    assert (r.format, r.loaded, r.rejected) == ("rees46", 5, 0)
    types = store.query("SELECT event_type, count(*) n FROM events GROUP BY 1 ORDER BY 1", db_path=db)
    assert dict(types.iter_rows()) == {"add_to_cart": 1, "purchase": 1, "remove_from_cart": 1, "view": 2}
    assert store.scalar("SELECT min(ts) FROM events", db_path=db) == datetime(2019, 10, 1, 0, 0, 17)
    items = {row["item_id"]: row for row in store.query("SELECT * FROM items", db_path=db).to_dicts()}
    assert items["4802036"]["category"] == "electronics.audio.headphone"
    assert items["4802036"]["brand"] == "apple"
    assert items["4802036"]["price"] == 180.0  # the latest price wins
    assert items["23100006"]["category"] is None and items["23100006"]["price"] == 350.0
    assert store.scalar("SELECT first_seen FROM users WHERE user_id = '513642368'", db_path=db) == datetime(
        2019, 10, 1, 0, 0, 17
    )
    assert store.scalar("SELECT count(DISTINCT session_id) FROM events", db_path=db) == 2
    # columns the header lacks are written as their one value, not staged
    constant = store.query("SELECT DISTINCT source, dwell_ms, position, page, rating FROM events", db_path=db)
    assert constant.rows() == [("rees46", None, None, None, None)]
    other = write(tmp_path, "other.csv", REES46.replace(",e937", ",e938"))
    ingest_events(other, db_path=db, source="shop-eu", actor=SYSTEM)
    assert store.scalar("SELECT count(*) FROM events WHERE source = 'shop-eu'", db_path=db) == 3


def test_rees46_keeps_catalog_attributes(db, tmp_path):
    cat = write(tmp_path, "items.csv", "item_id,title,category,brand\n4802036,Headphones,audio.premium,\n")
    r = ingest_catalog(cat, db_path=db, actor=SYSTEM)
    assert r.loaded == 1
    ingest_events(write(tmp_path, "r.csv", REES46), db_path=db, actor=SYSTEM)
    row = store.query("SELECT * FROM items WHERE item_id = '4802036'", db_path=db).to_dicts()[0]
    assert row["category"] == "audio.premium"  # from the catalog: kept
    assert row["brand"] == "apple"  # empty in the catalog: filled from the log
    assert row["title"] == "Headphones" and row["from_catalog"]


def test_retailrocket_with_properties_and_tree(db, tmp_path):
    path = write(tmp_path, "events.csv", RETAILROCKET)
    assert detect_format(path) == "retailrocket"
    r = ingest_events(path, db_path=db, actor=SYSTEM)
    assert (r.loaded, r.rejected) == (4, 0)
    ev = store.query("SELECT * FROM events ORDER BY ts", db_path=db)
    assert ev["ts"][0] == datetime(2015, 6, 2, 5, 2, 12, 117000)
    assert sorted(ev["event_type"]) == ["add_to_cart", "purchase", "view", "view"]
    props = write(
        tmp_path,
        "item_properties.csv",
        "timestamp,itemid,property,value\n1435460400000,355908,categoryid,1338\n"
        "1435460400000,355908,available,0\n1435460400000,248676,790,n5.000\n",
    )
    assert ingest_catalog(props, db_path=db, actor=SYSTEM).kind == "item_properties"
    tree = write(tmp_path, "category_tree.csv", "categoryid,parentid\n1338,250\n250,\n")
    assert ingest_catalog(tree, db_path=db, actor=SYSTEM).kind == "category_tree"
    item = store.query(
        "SELECT category, in_stock FROM items WHERE item_id = '355908'", db_path=db
    ).to_dicts()[0]
    assert item == {"category": "250.1338", "in_stock": False}


def test_sequence_and_pairs(db, tmp_path):
    seq = write(tmp_path, "beauty.txt", "1 10 11 12\n2 11 13\n3 10\n")
    assert detect_format(seq) == "sequence"
    r = ingest_events(seq, db_path=db, actor=SYSTEM)
    assert (r.rows_read, r.loaded) == (6, 6)
    order = store.query("SELECT item_id FROM events WHERE user_id = '1' ORDER BY ts", db_path=db)
    assert order["item_id"].to_list() == ["10", "11", "12"]
    assert store.query("SELECT DISTINCT event_type FROM events", db_path=db)["event_type"].to_list() == [
        "purchase"
    ]
    pairs = write(tmp_path, "pairs.txt", "a x\nb y\na z\nb x\na x\n")
    assert detect_format(pairs) == "pairs"
    r = ingest_events(pairs, db_path=db, actor=SYSTEM)
    assert (r.rows_read, r.loaded, r.duplicates) == (5, 5, 0)  # a bought x twice, at different times
    order = store.query("SELECT item_id FROM events WHERE user_id = 'a' ORDER BY ts", db_path=db)
    assert order["item_id"].to_list() == ["x", "z", "x"]
    again = ingest_events(pairs, db_path=db, actor=SYSTEM)
    assert (again.loaded, again.duplicates) == (0, 5)


def test_beauty_sample(db, tmp_path):
    """The first 300 users of the Amazon Beauty benchmark (kept in tests/fixtures, so no checkout skips it)."""
    lines = (Path(__file__).parent.parent / "fixtures" / "amazon-beauty-head.txt").read_text().splitlines()
    assert len(lines) == 300
    path = write(tmp_path, "beauty-head.txt", "\n".join(lines) + "\n")
    r = ingest_events(path, db_path=db, actor=SYSTEM)
    assert r.format == "sequence" and r.rejected == 0
    assert r.loaded + r.duplicates == sum(len(line.split()) - 1 for line in lines)
    assert count("users", db) == 300


def test_idempotent_and_overlapping(db, tmp_path):
    path = write(tmp_path, "log.csv", NATIVE)
    first = ingest_events(path, db_path=db, actor=SYSTEM)
    again = ingest_events(path, db_path=db, actor=SYSTEM)
    assert (again.rows_read, again.loaded, again.duplicates) == (6, 0, 6)
    lines = NATIVE.splitlines()
    overlap = write(
        tmp_path,
        "overlap.csv",
        "\n".join(lines[:1] + lines[4:] + ["2024-05-03 08:00:00,u3,i9,view,,,,,,,"]) + "\n",
    )
    r = ingest_events(overlap, db_path=db, actor=SYSTEM)
    assert (r.rows_read, r.loaded, r.duplicates) == (4, 1, 3)
    assert count("events", db) == first.loaded + 1
    assert count("ingests", db) == 3


def test_duplicates_within_file_null_session(db, tmp_path):
    text = (
        "ts,user_id,item_id,event_type,session_id\n"
        + "2024-01-01 00:00:00,u,i,view,\n" * 3
        + "2024-01-01 00:00:00,u,i,view,s\n2024-01-01 00:00:00,u,i,click,\n"
    )
    r = ingest_events(write(tmp_path, "d.csv", text), db_path=db, actor=SYSTEM)
    assert (r.rows_read, r.loaded, r.duplicates) == (5, 3, 2)


def test_catalog_kinds_and_upsert(db, tmp_path):
    items = write(
        tmp_path,
        "items.csv",
        "item_id,title,category,brand,seller_id,price,in_stock\n"
        "a,Alpha,x.y,acme,s1,10,true\nb,Beta,x.z,,s2,5,false\nc,,,,,-3,\n",
    )
    r = ingest_catalog(items, db_path=db, actor=SYSTEM)
    assert (r.kind, r.rows_read, r.loaded, r.rejected) == ("items", 3, 2, 1)
    assert store.scalar("SELECT reason FROM rejects", db_path=db).startswith("negative price")
    newer = write(tmp_path, "items2.csv", "item_id,price,title\na,12.5,\nd,1,Delta\n")
    ingest_catalog(newer, "items", db_path=db, actor=SYSTEM)
    got = {r["item_id"]: r for r in store.query("SELECT * FROM items", db_path=db).to_dicts()}
    assert set(got) == {"a", "b", "d"}  # nothing deleted
    assert got["a"]["price"] == 12.5 and got["a"]["title"] == "Alpha" and got["a"]["category"] == "x.y"
    sellers = write(tmp_path, "sellers.csv", "seller_id,name,tier,onboarded_at\ns1,One,large,2020-01-01\n")
    assert ingest_catalog(sellers, db_path=db, actor=SYSTEM).kind == "sellers"
    promos = write(
        tmp_path,
        "promos.csv",
        "item_id,category,discount,starts_at,ends_at\na,,0.2,2024-01-01,2024-02-01\n,x.z,15,2024-01-01,\n",
    )
    assert ingest_catalog(promos, db_path=db, actor=SYSTEM).loaded == 2
    assert sorted(store.query("SELECT discount FROM promotions", db_path=db)["discount"]) == [0.15, 0.2]
    users = write(
        tmp_path, "users.csv", "user_id,region,device,segment,first_seen\nu1,EU,mobile,vip,2023-01-01\n"
    )
    assert ingest_catalog(users, db_path=db, actor=SYSTEM).kind == "users"
    assert store.scalar("SELECT segment FROM users WHERE user_id = 'u1'", db_path=db) == "vip"


def test_one_row_per_item_and_user_across_loads(db, tmp_path):
    """items and users have no PRIMARY KEY index (store migration 4): every writer merges. Events, overlapping
    events, catalogs and users files in any order leave exactly one row per id, with the merged values."""
    rees = write(tmp_path, "r.csv", REES46)
    ingest_events(rees, db_path=db, actor=SYSTEM)
    ingest_events(write(tmp_path, "n.csv", NATIVE), db_path=db, actor=SYSTEM)
    cat = write(tmp_path, "items.csv", "item_id,title,price\n4802036,Headphones,199\ni1,One,1\nnew,New,2\n")
    ingest_catalog(cat, db_path=db, actor=SYSTEM)
    ingest_catalog(cat, db_path=db, actor=SYSTEM)
    ingest_events(
        rees, db_path=db, actor=SYSTEM
    )  # all duplicates: nothing new, attributes from the catalog kept
    users = write(tmp_path, "users.csv", "user_id,region,first_seen\nu1,EU,2020-01-01\n513642368,US,\n")
    ingest_catalog(users, db_path=db, actor=SYSTEM)
    ingest_catalog(users, db_path=db, actor=SYSTEM)
    for table, key in (("items", "item_id"), ("users", "user_id")):
        dupes = store.scalar(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}", db_path=db)
        assert dupes == 0, table
    assert count("items", db) == 5  # 2 REES46 products, i1, i2, new
    assert count("users", db) == 4
    row = store.query("SELECT * FROM items WHERE item_id = '4802036'", db_path=db).to_dicts()[0]
    assert (row["title"], row["price"], row["brand"]) == ("Headphones", 199.0, "apple")
    u = store.query("SELECT * FROM users WHERE user_id = '513642368'", db_path=db).to_dicts()[0]
    assert u["region"] == "US" and u["first_seen"] == datetime(2019, 10, 1, 0, 0, 17)
    assert store.scalar("SELECT first_seen FROM users WHERE user_id = 'u1'", db_path=db) == datetime(
        2020, 1, 1
    )


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", "", "empty"),
        ("blank.csv", "\n\n  \n", "empty"),
        ("noreq.csv", "ts,user_id,item_id\n2024-01-01,u,i\n", "event_type"),
        ("weird.bin", "hello there!\n", "unknown format"),
        ("only_header.csv", "ts,user_id,item_id,event_type\n", "no rows"),
    ],
)
def test_whole_file_errors_write_nothing(db, tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        ingest_events(path, db_path=db, actor=SYSTEM)
    assert str(path) in str(info.value)
    assert count("events", db) == 0 and count("ingests", db) == 0 and count("rejects", db) == 0


def test_bad_format_name(db, tmp_path):
    with pytest.raises(InputError, match="rees46"):
        ingest_events(write(tmp_path, "log.csv", NATIVE), "csv", db_path=db, actor=SYSTEM)
    with pytest.raises(InputError, match="event_time"):
        ingest_events(write(tmp_path, "log2.csv", NATIVE), "rees46", db_path=db, actor=SYSTEM)
