"""SQL injection through a file's column names: hostile names in CSV, JSON Lines and Parquet, for event
logs and catalogs. The loads either succeed with the hostile columns ignored and reported, or refuse with a
clear message; no table is dropped or changed beyond the load, no file is read or written by an injection."""

from __future__ import annotations

import csv
import io
import json

import polars as pl
import pytest
from security_helpers import snapshot, table_names

from core import store
from core.data.ingest import ingest_catalog, ingest_events
from core.errors import InputError
from core.release.roles import SYSTEM
from core.sql import ident, lit


def hostile_names(tmp_path) -> list[str]:
    """Column names an attacker would try: quotes closing our quoting, statements, file access, JSON paths,
    control characters, near-misses of our own names, a very long one."""
    pwned = tmp_path / "pwned.csv"
    return [
        'x"; DROP TABLE events; --',
        'Price"; DROP TABLE items; --',
        f"') ; COPY (SELECT 'pwned') TO '{pwned}'; --",
        "a\" , (SELECT content FROM read_text('/etc/hostname')) AS \"b",
        'user_id"',  # our name with a quote: not ours
        "item_id') OR 1=1 --",
        "$.user_id",
        "a.b[0]",
        "tab\there",
        "ūser_id",
        "x" * 300,
    ]


EVENT_COLUMNS = ["ts", "user_id", "item_id", "event_type", "price"]
EVENT_ROWS = [
    ["2024-05-01 10:00:00", "u1", "i1", "view", "1.5"],
    ["2024-05-01 10:01:00", "u2", "i2", "purchase", "2.5"],
]
CATALOG_COLUMNS = ["item_id", "title", "price"]
CATALOG_ROWS = [["i1", "One", "10"], ["i2", "Two", "20"]]


def interleave(names: list[str], hostile: list[str]) -> list[str]:
    """Hostile columns before, between and after ours."""
    if not hostile:
        return list(names)
    out = []
    for i, name in enumerate(names):
        out += [hostile[i % len(hostile)], name]
    return out + hostile[len(names) :]


def write(tmp_path, fmt: str, columns: list[str], rows: list[list[str]], hostile: list[str]):
    header = interleave(columns, hostile)
    known = {c: i for i, c in enumerate(columns)}
    table = [[row[known[c]] if c in known else f"junk{j}" for j, c in enumerate(header)] for row in rows]
    path = tmp_path / f"hostile.{'jsonl' if fmt == 'jsonl' else fmt}"
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer).writerows([header, *table])
        path.write_text(buffer.getvalue())
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(dict(zip(header, r, strict=True))) for r in table) + "\n")
    else:
        frame = pl.DataFrame({c: [r[j] for r in table] for j, c in enumerate(header)})
        frame.write_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_hostile_column_names_in_an_event_log_are_ignored_and_reported(db, tmp_path, fmt):
    hostile = hostile_names(tmp_path)
    path = write(tmp_path, fmt, EVENT_COLUMNS, EVENT_ROWS, hostile)
    tables = table_names(db)
    result = ingest_events(path, db_path=db, actor=SYSTEM)
    assert (result.loaded, result.rejected) == (2, 0)
    assert table_names(db) == tables
    assert not (tmp_path / "pwned.csv").exists()
    stored = store.query("SELECT user_id, item_id, price FROM events ORDER BY user_id", db_path=db).rows()
    assert stored == [("u1", "i1", 1.5), ("u2", "i2", 2.5)]
    assert "ignored columns" in result.summary()
    note = store.scalar("SELECT message FROM ingests", db_path=db)
    assert "DROP TABLE events" in note  # reported as data (a parameter), never run


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_hostile_column_names_in_a_catalog_are_ignored_and_reported(db, tmp_path, fmt):
    hostile = hostile_names(tmp_path)
    path = write(tmp_path, fmt, CATALOG_COLUMNS, CATALOG_ROWS, hostile)
    tables = table_names(db)
    result = ingest_catalog(path, db_path=db, actor=SYSTEM)
    assert (result.kind, result.loaded, result.rejected) == ("items", 2, 0)
    assert table_names(db) == tables
    assert not (tmp_path / "pwned.csv").exists()
    stored = store.query("SELECT item_id, title, price FROM items ORDER BY item_id", db_path=db).rows()
    assert stored == [("i1", "One", 10.0), ("i2", "Two", 20.0)]
    assert "ignored columns" in result.summary()


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("target", ["events", "catalog"])
def test_a_required_column_spelled_with_a_quote_is_missing_and_nothing_is_written(db, tmp_path, fmt, target):
    columns, rows = (EVENT_COLUMNS, EVENT_ROWS) if target == "events" else (CATALOG_COLUMNS, CATALOG_ROWS)
    hostile = [c + '"; DROP TABLE ingests; --' if c in ("user_id", "item_id") else c for c in columns]
    path = write(tmp_path, fmt, hostile, rows, [])
    before = snapshot(db)
    with pytest.raises(InputError, match="missing required column"):
        if target == "events":
            ingest_events(path, db_path=db, actor=SYSTEM)
        else:
            ingest_catalog(path, "items", db_path=db, actor=SYSTEM)
    assert snapshot(db) == before


def test_hostile_values_are_data(db, tmp_path):
    """Values are parameters or fields of a staged table: a value that is SQL stays a value."""
    path = tmp_path / "values.csv"
    value = "'); DROP TABLE events; --"
    path.write_text(f'ts,user_id,item_id,event_type\n2024-05-01 10:00:00,"{value}",i1,view\n')
    ingest_events(path, db_path=db, actor=SYSTEM)
    assert store.scalar("SELECT user_id FROM events", db_path=db) == value


def test_a_json_key_that_is_a_path_expression_is_not_followed(db, tmp_path):
    """Only a key spelled as a plain name is read: "$.user_id" or "user_id.x" never become JSON paths."""
    path = tmp_path / "keys.jsonl"
    path.write_text(
        json.dumps(
            {
                "ts": "2024-05-01 10:00:00",
                "USER_ID": "u1",
                "Item_Id": "i1",
                "event_type": "view",
                "user_id.x": "evil",
                "$.item_id": "evil",
            }
        )
        + "\n"
    )
    result = ingest_events(path, db_path=db, actor=SYSTEM)
    assert result.loaded == 1
    assert store.query("SELECT user_id, item_id FROM events", db_path=db).rows() == [("u1", "i1")]


def test_two_columns_meaning_one_known_name_are_refused(db, tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("ts,user_id,item_id,event_type, USER_ID\n2024-05-01 10:00:00,u1,i1,view,u2\n")
    with pytest.raises(InputError, match="column user_id appears twice"):
        ingest_events(path, db_path=db, actor=SYSTEM)


class TestQuoting:
    """The one quoting helper (core.sql): literals double their quotes, identifiers are ours only."""

    def test_a_literal_doubles_single_quotes(self):
        assert lit("it's") == "'it''s'"

    def test_a_literal_round_trips_through_duckdb(self, db):
        text = "a'b\"c\\d'); DROP TABLE events; --\n€"
        with store.connect(db) as con:
            assert con.execute(f"SELECT {lit(text)}").fetchall()[0][0] == text

    def test_a_literal_refuses_nul(self):
        with pytest.raises(ValueError, match="NUL"):
            lit("a\x00b")

    @pytest.mark.parametrize("name", ['a"b', "a b", "1a", "", "a;b", "ä"])
    def test_an_identifier_that_is_not_ours_is_refused(self, name):
        with pytest.raises(ValueError, match="not one of our identifiers"):
            ident(name)

    def test_our_identifier_is_quoted(self):
        assert ident("user_id") == '"user_id"'
