"""Data that is wrong but looks fine: non-finite numbers, timestamps out of range or with offsets and zone
names, control characters and overlong ids, partial catalog updates, duplicates inside a catalog file, blank
lines before the header and quoted line breaks — on the parallel path and line by line."""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl
import pytest

from core import migrations, store
from core.data.features import overview_stats
from core.data.ingest import ingest_catalog, ingest_events, rejects_for
from core.release.roles import SYSTEM

HEADER = "ts,user_id,item_id,event_type,session_id,price"


def load(tmp_path, db, text: str, name: str = "log.csv", fmt: str | None = None):
    path = tmp_path / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    result = ingest_events(path, fmt, db_path=db, actor=SYSTEM)
    assert result.rows_read == result.loaded + result.rejected + result.duplicates
    return result, {r["line_no"]: r["reason"] for r in rejects_for(result.ingest_id, db_path=db).to_dicts()}


def as_jsonl(csv_text: str) -> str:
    lines = csv_text.strip().split("\n")
    names = lines[0].split(",")
    return "\n".join(json.dumps(dict(zip(names, line.split(","), strict=True))) for line in lines[1:]) + "\n"


NON_FINITE = ["NaN", "nan", "inf", "-inf", "Infinity", "1e309", "-1e400"]


@pytest.mark.parametrize("shape", ["csv", "jsonl"])
def test_non_finite_prices_are_rejected(db, tmp_path, shape):
    rows = [f"2024-05-01 10:00:0{i},u{i},i{i},view,s,{v}" for i, v in enumerate(NON_FINITE)]
    text = "\n".join([HEADER, *rows, "2024-05-01 10:00:09,u9,i9,view,s,2.5"]) + "\n"
    result, reasons = load(tmp_path, db, as_jsonl(text) if shape == "jsonl" else text, f"log.{shape}")
    assert (result.loaded, result.rejected) == (1, len(NON_FINITE))
    assert all(
        "not a finite number" in reasons[line] for line in range(2 if shape == "csv" else 1, len(rows))
    )


@pytest.mark.parametrize(
    "column, value",
    [
        ("dwell_ms", "inf"),
        ("dwell_ms", "NaN"),
        ("position", "1e309"),
        ("rating", "nan"),
        ("position", "1e12"),
        ("dwell_ms", "1e30"),
    ],
)
def test_non_finite_or_out_of_range_numbers_are_rejected_not_crashing(db, tmp_path, column, value):
    text = f"ts,user_id,item_id,event_type,{column}\n2024-05-01 10:00:00,u,i,review,{value}\n"
    result, reasons = load(tmp_path, db, text)
    assert (result.loaded, result.rejected) == (0, 1)
    assert column in reasons[2]


def test_non_finite_doubles_in_parquet_are_rejected(db, tmp_path):
    frame = pl.DataFrame(
        {
            "ts": ["2024-05-01 10:00:00"] * 3,
            "user_id": ["a", "b", "c"],
            "item_id": ["i"] * 3,
            "event_type": ["view"] * 3,
            "price": [float("nan"), float("inf"), 1.0],
        }
    )
    frame.write_parquet(tmp_path / "log.parquet")
    result = ingest_events(tmp_path / "log.parquet", db_path=db, actor=SYSTEM)
    assert (result.loaded, result.rejected) == (1, 2)


@pytest.mark.parametrize(
    "ts",
    ["10000-01-01 00:00:00", "1969-12-31 23:59:59", "2101-01-01 00:00:00", "9999999999999", "0001-01-01"],
)
def test_timestamps_outside_1970_2100_are_rejected(db, tmp_path, ts):
    result, reasons = load(tmp_path, db, f"{HEADER}\n{ts},u,i,view,s,1\n2024-05-01 10:00:00,u,i,view,s,1\n")
    assert (result.loaded, result.rejected) == (1, 1)
    assert "outside the years 1970–2100" in reasons[2]


def test_a_year_10000_row_leaves_stats_working(db, tmp_path):
    load(tmp_path, db, f"{HEADER}\n10000-01-01 00:00:00,u,i,view,s,1\n2024-05-01 10:00:00,u,i,view,s,1\n")
    stats = overview_stats(db_path=db)
    assert stats["events"] == 1


def test_a_retailrocket_timestamp_too_long_is_rejected_not_overflowing(db, tmp_path):
    text = "timestamp,visitorid,event,itemid,transactionid\n9999999999999999,1,view,2,\n1433221332117,1,view,2,\n"
    result, reasons = load(tmp_path, db, text)
    assert (result.loaded, result.rejected) == (1, 1)


OFFSETS = {  # written → stored (naive UTC)
    "2024-05-01 12:00:00+02": datetime(2024, 5, 1, 10),
    "2024-05-01 12:00:00+0200": datetime(2024, 5, 1, 10),
    "2024-05-01 12:00:00+02:00": datetime(2024, 5, 1, 10),
    "2024-05-01T10:00:00Z": datetime(2024, 5, 1, 10),
    "2024-05-01 12:00:00 Europe/Paris": datetime(2024, 5, 1, 10),
    "2024-05-01 06:00:00 America/New_York": datetime(2024, 5, 1, 10),
    "2024-05-01 10:00:00 UTC": datetime(2024, 5, 1, 10),
    "2024-05-01T15:30:00+05:30": datetime(2024, 5, 1, 10),
    "2024-05-01 05:00:00-05": datetime(2024, 5, 1, 10),
}


@pytest.mark.parametrize("written", sorted(OFFSETS))
@pytest.mark.parametrize("shape", ["csv", "jsonl"])
def test_every_offset_and_zone_name_is_converted_to_utc(db, tmp_path, written, shape):
    text = f"ts,user_id,item_id,event_type\n{written},u,i,view\n"
    result, _ = load(tmp_path, db, as_jsonl(text) if shape == "jsonl" else text, f"log.{shape}")
    assert result.loaded == 1
    assert store.scalar("SELECT ts FROM events", db_path=db) == OFFSETS[written]


@pytest.mark.parametrize("written", ["2024-05-01 12:00:00 Mars/Olympus", "2024-05-01 12:00:00 +2", "soon"])
def test_an_unknown_zone_is_rejected_never_stored_as_local_time(db, tmp_path, written):
    result, reasons = load(tmp_path, db, f"ts,user_id,item_id,event_type\n{written},u,i,view\n")
    assert (result.loaded, result.rejected) == (0, 1)
    assert "unparseable timestamp" in reasons[2]


CONTROLS = {"nul": "\x00", "tab": "\t", "escape": "\x1b", "bell": "\x07", "delete": "\x7f"}


@pytest.mark.parametrize("char", sorted(CONTROLS))
@pytest.mark.parametrize("column", ["user_id", "item_id", "session_id"])
@pytest.mark.parametrize("fmt", ["native", "rees46", "jsonl"])
def test_control_characters_inside_ids_are_rejected(db, tmp_path, char, column, fmt):
    """Native and REES46 CSV start on the parallel path (the ids are checked once each there, and a file
    with such an id goes line by line); JSON Lines are read line by line."""
    bad = "x" + CONTROLS[char] + "y"
    ids = {"user_id": "u1", "item_id": "i1", "session_id": "s1"} | {column: bad}
    if fmt == "rees46":
        header = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
        row = f"2019-10-01 00:00:17 UTC,view,{ids['item_id']},1,,,1,{ids['user_id']},{ids['session_id']}"
        good = "2019-10-01 00:00:18 UTC,view,i2,1,,,1,u2,s2"
        text, name = f"{header}\n{row}\n{good}\n", "log.csv"
    else:
        text = (
            f"ts,user_id,item_id,event_type,session_id\n"
            f"2024-05-01 10:00:00,{ids['user_id']},{ids['item_id']},view,{ids['session_id']}\n"
            "2024-05-01 10:00:01,u2,i2,view,s2\n"
        )
        text, name = (as_jsonl(text), "log.jsonl") if fmt == "jsonl" else (text, "log.csv")
    result, reasons = load(tmp_path, db, text, name)
    assert (result.loaded, result.rejected) == (1, 1)
    assert "control character" in next(iter(reasons.values()))
    assert store.scalar("SELECT count(*) FROM users WHERE user_id <> 'u2'", db_path=db) == 0


def test_spaces_around_ids_are_trimmed(db, tmp_path):
    result, _ = load(tmp_path, db, "ts,user_id,item_id,event_type\n2024-05-01 10:00:00,  u1 , i1  ,view\n")
    assert store.query("SELECT user_id, item_id FROM events", db_path=db).rows() == [("u1", "i1")]


@pytest.mark.parametrize("column", ["user_id", "item_id", "session_id"])
def test_ids_longer_than_256_characters_are_rejected(db, tmp_path, column):
    ids = {"user_id": "u", "item_id": "i", "session_id": "s"}
    rows = []
    for n, length in enumerate((256, 257, 5000)):
        row = ids | {column: "x" * length}
        rows.append(f"2024-05-01 10:00:0{n},{row['user_id']},{row['item_id']},view,{row['session_id']}")
    text = "ts,user_id,item_id,event_type,session_id\n" + "\n".join(rows) + "\n"
    result, reasons = load(tmp_path, db, text)
    assert (result.loaded, result.rejected) == (1, 2)
    assert "characters long — ids have at most 256" in reasons[3]


def test_a_sequence_token_with_a_control_character_is_rejected(db, tmp_path):
    result, reasons = load(tmp_path, db, b"1 10 11\n2 1\x002 13\n3 10\n", "seq.txt", fmt="sequence")
    assert (result.loaded, result.rejected) == (3, 1)
    assert "control character" in reasons[2]


# ------------------------------------------------------------------------------------------- catalogs


def catalog(tmp_path, db, text: str, kind=None, name="items.csv"):
    path = tmp_path / name
    path.write_text(text)
    result = ingest_catalog(path, kind, db_path=db, actor=SYSTEM)
    assert result.rows_read == result.loaded + result.rejected + result.duplicates
    return result, {r["line_no"]: r["reason"] for r in rejects_for(result.ingest_id, db_path=db).to_dicts()}


def item(db, item_id: str) -> dict:
    return store.query("SELECT * FROM items WHERE item_id = ?", [item_id], db_path=db).to_dicts()[0]


def test_a_partial_update_changes_only_the_named_fields(db, tmp_path):
    catalog(tmp_path, db, "item_id,title,brand,price,in_stock\na,Alpha,acme,10,false\n")
    catalog(tmp_path, db, "item_id,price\na,12\n", name="prices.csv")
    got = item(db, "a")
    assert (got["price"], got["in_stock"], got["title"], got["brand"]) == (12.0, False, "Alpha", "acme")


def test_a_new_item_from_a_partial_file_is_in_stock(db, tmp_path):
    catalog(tmp_path, db, "item_id,price\nnew,3\n")
    assert item(db, "new")["in_stock"] is True


def test_a_partial_seller_update_keeps_the_tier(db, tmp_path):
    catalog(tmp_path, db, "seller_id,name,tier\ns1,One,large\n", name="sellers.csv")
    catalog(tmp_path, db, "seller_id,name\ns1,Uno\n", name="sellers2.csv")
    row = store.query("SELECT name, tier FROM sellers", db_path=db).rows()
    assert row == [("Uno", "large")]


def test_the_same_item_twice_in_one_file_is_a_duplicate(db, tmp_path):
    result, _ = catalog(tmp_path, db, "item_id,title\na,First\nb,Bee\na,Second\n")
    assert (result.rows_read, result.loaded, result.duplicates) == (3, 2, 1)
    assert item(db, "a")["title"] == "First"
    assert store.scalar("SELECT duplicates FROM ingests", db_path=db) == 1


@pytest.mark.parametrize("value", ["NaN", "inf", "1e309", "-Infinity"])
def test_non_finite_catalog_numbers_are_rejected(db, tmp_path, value):
    result, reasons = catalog(tmp_path, db, f"item_id,price\na,{value}\nb,1\n")
    assert (result.loaded, result.rejected) == (1, 1)
    assert "not a finite number" in reasons[2]
    result, reasons = catalog(
        tmp_path, db, f"item_id,discount,starts_at\na,{value},2024-01-01\n", name="promos.csv"
    )
    assert result.rejected == 1


def test_catalog_dates_out_of_range_are_rejected_and_offsets_converted(db, tmp_path):
    text = "item_id,created_at\na,10000-01-01\nb,2024-05-01 12:00:00+02\nc,2024-05-01 12:00:00 Europe/Paris\n"
    result, reasons = catalog(tmp_path, db, text)
    assert (result.loaded, result.rejected) == (2, 1)
    assert "outside the years 1970–2100" in reasons[2]
    assert item(db, "b")["created_at"] == datetime(2024, 5, 1, 10)
    assert item(db, "c")["created_at"] == datetime(2024, 5, 1, 10)


def test_a_malformed_catalog_jsonl_line_is_rejected_on_its_own(db, tmp_path):
    text = '{"item_id": "a", "price": 1}\n{"item_id": "b", "price": \n[1, 2]\n{"item_id": "c"}\n'
    result, reasons = catalog(tmp_path, db, text, name="items.jsonl")
    assert (result.loaded, result.rejected) == (2, 2)
    assert set(reasons) == {2, 3}
    assert "not a valid JSON object" in reasons[2]


@pytest.mark.parametrize("bad", ["a\x00b", "a\tb", "x" * 257])
def test_catalog_ids_with_control_characters_or_too_long_are_rejected(db, tmp_path, bad):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"item_id": bad, "title": "t"}) + "\n" + json.dumps({"item_id": "ok"}) + "\n")
    result = ingest_catalog(path, db_path=db, actor=SYSTEM)
    assert (result.loaded, result.rejected) == (1, 1)


# --------------------------------------------------------------------------- blank lines, line breaks


def test_blank_lines_before_the_header_load_with_physical_line_numbers(db, tmp_path):
    text = f"\n\n{HEADER}\n2024-05-01 10:00:00,u,i,view,s,1\nbad,u,i,view,s,1\n"
    result, reasons = load(tmp_path, db, text)
    assert (result.loaded, result.rejected) == (1, 1)
    assert list(reasons) == [5]


def test_blank_lines_before_a_catalog_header(db, tmp_path):
    result, _ = catalog(tmp_path, db, "\n  \nitem_id,title\na,Alpha\n")
    assert (result.loaded, result.rejected) == (1, 0)


@pytest.mark.parametrize("with_a_bad_row", [False, True], ids=["parallel-path", "line-path"])
def test_a_quoted_line_break_loads_as_one_value(db, tmp_path, with_a_bad_row):
    rows = [
        "2024-05-01 10:00:00,u1,i1,view,home",
        '2024-05-01 10:00:01,u2,i2,view,"first line\nsecond line"',
        "2024-05-01 10:00:02,u3,i3,view,search",
    ]
    if with_a_bad_row:
        rows.append("2024-05-01 10:00:03,u4,i4,clik,search")
    result, reasons = load(tmp_path, db, "ts,user_id,item_id,event_type,page\n" + "\n".join(rows) + "\n")
    assert (result.loaded, result.rejected) == (3, int(with_a_bad_row))
    assert (
        store.scalar("SELECT page FROM events WHERE user_id = 'u2'", db_path=db) == "first line\nsecond line"
    )
    if with_a_bad_row:
        assert list(reasons) == [6]  # the record with the line break spans lines 3 and 4


def test_a_quoted_line_break_in_a_catalog(db, tmp_path):
    result, _ = catalog(tmp_path, db, 'item_id,title,price\na,"Two\nlines",1\nb,B,2\n')
    assert (result.loaded, result.rejected) == (2, 0)
    assert item(db, "a")["title"] == "Two\nlines"


def test_a_json_key_only_late_records_have_is_read(db, tmp_path):
    rows = [
        {"ts": f"2024-05-01 10:00:{i:02d}", "user_id": "u", "item_id": f"i{i}", "event_type": "view"}
        for i in range(50)
    ]
    rows.append(
        {"ts": "2024-05-01 11:00:00", "user_id": "u", "item_id": "i1", "event_type": "review", "rating": 4}
    )
    result, _ = load(tmp_path, db, "\n".join(json.dumps(r) for r in rows) + "\n", "log.jsonl")
    assert result.loaded == 51
    assert store.scalar("SELECT rating FROM events WHERE event_type = 'review'", db_path=db) == 4


@pytest.mark.parametrize("shape", ["jsonl", "sequence", "csv"])
def test_a_byte_order_mark_is_not_part_of_the_first_record(db, tmp_path, shape):
    text = {
        "jsonl": '{"ts": "2024-05-01 10:00:00", "user_id": "u1", "item_id": "i1", "event_type": "view"}\n',
        "sequence": "u1 i1 i2\nu2 i3 i4\n",
        "csv": "ts,user_id,item_id,event_type\n2024-05-01 10:00:00,u1,i1,view\n",
    }[shape]
    path = tmp_path / f"bom.{shape}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = ingest_events(path, db_path=db, actor=SYSTEM)
    assert result.rejected == 0
    assert store.scalar("SELECT min(user_id) FROM events", db_path=db) == "u1"


def test_an_old_database_with_a_year_10000_event_is_repaired_on_upgrade(tmp_path):
    """Migration 5: events stamped outside 1970–2100 (loaded before they were rejected) move to rejects."""
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMP)")
    for version, sql in enumerate(migrations.MIGRATIONS[:4], start=1):
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, now())", [version])
    con.execute("INSERT INTO ingests (ingest_id, loaded, rejected) VALUES (1, 2, 0)")
    con.execute(
        "INSERT INTO events (ts, user_id, item_id, event_type, ingest_id) VALUES "
        "('10000-01-01', 'u', 'i', 'view', 1), ('2024-05-01', 'u', 'i', 'view', 1)"
    )
    con.execute("INSERT INTO users VALUES ('u', '10000-01-01', NULL, NULL, NULL)")
    con.close()
    store._migrated.discard(str(path.resolve()))
    assert overview_stats(db_path=path)["days"] == 1
    assert store.scalar("SELECT count(*) FROM rejects WHERE ingest_id = 1", db_path=path) == 1
    assert store.query("SELECT loaded, rejected FROM ingests", db_path=path).rows() == [(1, 1)]
    assert store.scalar("SELECT first_seen FROM users", db_path=path) == datetime(2024, 5, 1)
