"""Ingestion: every format, every bad-row kind, conservation, idempotence, the transaction guarantee."""

import json

import polars as pl
import pytest

from core import store
from core.data.ingest import detect_format, ingest_catalog, ingest_events, rejects_for
from core.errors import InputError
from core.release.roles import SYSTEM

REES_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
REES_ROWS = (
    "2019-10-01 02:57:43 UTC,cart,4802036,2053013554658804075,electronics.audio.headphone,apple,171.56,522027971,"
    "e937725e-df44-463b-ab7e-cef912923585\n"
    "2019-10-01 00:00:17 UTC,view,23100006,2053013561638126333,,,357.79,513642368,17566c27-0a8f-4506-9f30\n"
    "2019-10-01 03:05:00 UTC,purchase,4802036,2053013554658804075,electronics.audio.headphone,apple,169.00,522027971,"
    "e937725e-df44-463b-ab7e-cef912923585\n"
)


def count(table):
    return store.scalar(f"SELECT count(*) FROM {table}")


def conserved(r):
    return r.rows_read == r.loaded + r.rejected + r.duplicates + r.forgotten


def test_rees46(db, tmp_path):
    f = tmp_path / "2019-Oct.csv"
    f.write_text(REES_HEADER + REES_ROWS)
    assert detect_format(f) == "rees46"
    r = ingest_events(f, actor=SYSTEM)
    assert (r.format, r.loaded, r.rejected, r.duplicates) == ("rees46", 3, 0, 0)
    types = store.query("SELECT event_type FROM events ORDER BY ts")["event_type"].to_list()
    assert types == ["view", "add_to_cart", "purchase"]
    item = store.query("SELECT category, brand, price FROM items WHERE item_id = '4802036'").to_dicts()[0]
    assert item == {
        "category": "electronics.audio.headphone",
        "brand": "apple",
        "price": 169.0,
    }  # latest price
    assert store.scalar("SELECT category FROM items WHERE item_id = '23100006'") is None


def test_retailrocket_with_properties_and_tree(db, tmp_path):
    ev = tmp_path / "events.csv"
    ev.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n1433224214164,992329,addtocart,248676,\n"
        "1433221999827,111016,transaction,318965,4000\n"
    )
    r = ingest_events(ev, actor=SYSTEM)
    assert (r.format, r.loaded) == ("retailrocket", 3)
    assert set(store.query("SELECT event_type FROM events")["event_type"]) == {
        "view",
        "add_to_cart",
        "purchase",
    }
    assert str(store.scalar("SELECT min(ts) FROM events")).startswith("2015-06-02")
    props = tmp_path / "item_properties.csv"
    props.write_text(
        "timestamp,itemid,property,value\n1435460400000,355908,categoryid,1338\n"
        "1435460400000,355908,available,0\n1435460400000,248676,categoryid,1000\n"
    )
    tree = tmp_path / "category_tree.csv"
    tree.write_text("categoryid,parentid\n1338,1000\n1000,250\n250,\n")
    assert ingest_catalog(props, actor=SYSTEM).kind == "item_properties"
    assert ingest_catalog(tree, actor=SYSTEM).kind == "category_tree"
    row = store.query("SELECT category, in_stock FROM items WHERE item_id = '355908'").to_dicts()[0]
    assert row == {"category": "250.1000.1338", "in_stock": False}


def test_native_csv_parquet_jsonl_and_mapping(db, tmp_path):
    frame = pl.DataFrame(
        {
            "ts": ["2026-10-01 10:00:00", "2026-10-01 10:01:00"],
            "user_id": ["u1", "u2"],
            "item_id": ["a", "b"],
            "event_type": ["view", "purchase"],
            "price": [1.5, 2.0],
        }
    )
    frame.write_csv(tmp_path / "e.csv")
    frame.with_columns(pl.col("user_id") + "p").write_parquet(tmp_path / "e.parquet")
    (tmp_path / "e.jsonl").write_text(
        "\n".join(json.dumps({**r, "user_id": r["user_id"] + "j"}) for r in frame.to_dicts()) + "\n"
    )
    frame.rename({"ts": "when", "user_id": "visitor"}).with_columns(pl.col("visitor") + "m").write_csv(
        tmp_path / "m.csv"
    )
    for name in ("e.csv", "e.parquet", "e.jsonl"):
        r = ingest_events(tmp_path / name, actor=SYSTEM)
        assert (r.format, r.loaded, r.rejected) == ("native", 2, 0), name
    with pytest.raises(InputError, match="missing required column"):
        ingest_events(tmp_path / "m.csv", actor=SYSTEM)
    assert (
        ingest_events(tmp_path / "m.csv", mapping={"ts": "when", "user_id": "visitor"}, actor=SYSTEM).loaded
        == 2
    )
    assert count("events") == 8 and count("users") == 8


def test_sequence_and_pairs(db, tmp_path):
    seq = tmp_path / "beauty-like.txt"
    seq.write_text("1 10 11 12\n2 11 13\n3\n")
    r = ingest_events(seq, actor=SYSTEM)
    assert (r.format, r.loaded, r.rejected) == ("sequence", 5, 1)
    order = store.query("SELECT item_id FROM events WHERE user_id = '1' ORDER BY ts")["item_id"].to_list()
    assert order == ["10", "11", "12"]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("7 a\n8 b\n7 c\n7 a b\n")
    r = ingest_events(pairs, "pairs", actor=SYSTEM)
    assert (r.loaded, r.rejected) == (3, 1)
    assert store.query("SELECT item_id FROM events WHERE user_id = '7' ORDER BY ts")["item_id"].to_list() == [
        "a",
        "c",
    ]


BAD_ROWS = {
    "notatime,u1,i1,view,s,1": "unparseable timestamp",
    "2026-10-01 10:00:00,u1,i1,clik,s,1": "unknown event type 'clik'",
    "2026-10-01 10:00:00,u1,i1,view,s,abc": "non-numeric price 'abc'",
    "2026-10-01 10:00:00,u1,i1,view,s,-3": "negative price",
    "2026-10-01 10:00:00,,i1,view,s,1": "missing user id",
    "2026-10-01 10:00:00,u1,,view,s,1": "missing item id",
    "2026-10-01 10:00:00,u1,i1,view": "wrong column count",
    "2026-10-01 10:00:00,u1,i1,view,s,1,extra": "wrong column count",
}


def test_every_bad_row_kind_is_rejected_with_line_and_reason(db, tmp_path):
    f = tmp_path / "bad.csv"
    good = "2026-10-01 09:00:00,u0,i0,view,s,1"
    lines = (
        ["ts,user_id,item_id,event_type,session_id,price", good, ""]
        + list(BAD_ROWS)
        + [good.replace("u0", "u9")]
    )
    data = "\n".join(lines).encode() + b"\n2026-10-01 10:00:00,u1,i\xff1,view,s,1\n"
    f.write_bytes(data)
    r = ingest_events(f, actor=SYSTEM)
    assert conserved(r)
    assert (r.loaded, r.rejected) == (2, len(BAD_ROWS) + 1)
    rejects = rejects_for(r.ingest_id).to_dicts()
    by_line = {x["line_no"]: x for x in rejects}
    for n, (raw, reason) in enumerate(BAD_ROWS.items(), start=4):  # header 1, good 2, blank 3
        assert reason in by_line[n]["reason"], (n, by_line[n])
        assert by_line[n]["raw"] == raw
    assert "encoding" in by_line[len(lines) + 1]["reason"]


def test_reingest_adds_no_duplicates(db, tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(REES_HEADER + REES_ROWS + REES_ROWS.splitlines()[0] + "\n")  # one in-file duplicate
    first = ingest_events(f, actor=SYSTEM)
    assert (first.loaded, first.duplicates) == (3, 1) and conserved(first)
    again = ingest_events(f, actor=SYSTEM)
    assert (again.loaded, again.duplicates) == (0, 4) and conserved(again)
    assert count("events") == 3 and count("ingests") == 2


@pytest.mark.parametrize(
    "content,match",
    [
        ("", "empty"),
        ("foo;bar\n", "unknown format"),
        ("ts,user_id,item_id\n2026-01-01,u,i\n", "missing required column"),
    ],
)
def test_whole_file_problems_write_nothing(db, tmp_path, content, match):
    f = tmp_path / "x.csv"
    f.write_text(content)
    with pytest.raises(InputError, match=match) as err:
        ingest_events(f, actor=SYSTEM)
    assert "x.csv" in str(err.value)
    assert count("events") == 0 and count("ingests") == 0


def test_missing_file_is_named(db, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        ingest_events(tmp_path / "nope.csv", actor=SYSTEM)


def test_failure_mid_load_leaves_store_unchanged(db, tmp_path, monkeypatch):
    f = tmp_path / "r.csv"
    f.write_text(REES_HEADER + REES_ROWS)
    ingest_events(f, actor=SYSTEM)
    before = {t: count(t) for t in ("events", "items", "users", "ingests", "rejects")}
    g = tmp_path / "more.csv"
    g.write_text(REES_HEADER + REES_ROWS.replace("2019-10-01", "2019-10-02") + "bad,row\n")

    def crash(con, fmt):
        raise RuntimeError("killed mid-load")

    monkeypatch.setattr("core.data.ingest._upsert_items_from_events", crash)
    with pytest.raises(RuntimeError, match="killed"):
        ingest_events(g, actor=SYSTEM)
    assert {t: count(t) for t in before} == before


def test_catalog_upsert_keeps_and_updates(db, tmp_path):
    items = tmp_path / "items.csv"
    items.write_text(
        "item_id,title,category,brand,seller_id,price,in_stock\n"
        "a,Phone,electronics.phones.smartphones,Acme,s1,199,true\nb,Case,,Acme,s1,-5,true\n"
    )
    r = ingest_catalog(items, actor=SYSTEM)
    assert (r.kind, r.loaded, r.rejected) == ("items", 1, 1)
    assert "negative price" in rejects_for(r.ingest_id)["reason"][0]
    newer = tmp_path / "items2.csv"
    newer.write_text("item_id,price,in_stock\na,149,false\nc,5,true\n")
    ingest_catalog(newer, actor=SYSTEM)
    row = store.query("SELECT title, price, in_stock FROM items WHERE item_id = 'a'").to_dicts()[0]
    assert row == {"title": "Phone", "price": 149.0, "in_stock": False}
    assert count("items") == 2


@pytest.mark.parametrize(
    "name, text, kind, reason",
    [
        (
            "sellers.csv",
            "seller_id,name,tier,onboarded_at\ns1,Big,large,2024-01-01\ns2,Tiny,small,notadate\n",
            "sellers",
            "onboarded_at 'notadate' is not a date",
        ),
        (
            "promos.csv",
            "item_id,category,discount,starts_at,ends_at\na,,0.2,2026-10-01,2026-11-01\n"
            ",home,15,2026-10-01,2026-09-01\n",
            "promotions",
            "ends_at is before starts_at",
        ),
    ],
)
def test_catalog_kinds_reject_bad_rows_on_their_line(db, tmp_path, name, text, kind, reason):
    path = tmp_path / name
    path.write_text(text)
    r = ingest_catalog(path, actor=SYSTEM)
    assert (r.kind, r.loaded, r.rejected) == (kind, 1, 1)
    rejected = rejects_for(r.ingest_id)
    assert rejected["line_no"].to_list() == [3] and rejected["reason"][0] == reason


def test_events_on_unknown_items_are_kept(db, tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("ts,user_id,item_id,event_type\n2026-10-01 10:00:00,u1,ghost,view\n")
    assert ingest_events(f, actor=SYSTEM).loaded == 1
    assert store.scalar("SELECT count(*) FROM items WHERE item_id = 'ghost' AND NOT from_catalog") == 1
    from core.data.quality import quality_report

    assert quality_report().unknown_items == 1
