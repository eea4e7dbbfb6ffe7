"""Fuzzing both readers (event logs and catalogs) with random bytes, random rows and random column names, as
CSV, JSON Lines and Parquet. Whatever comes in: the load ends in a result or in a ``StudioError`` (never
another exception, so never a traceback); rows read = loaded + rejected + duplicates; a refused file changes
nothing; a loaded one changes only the tables that load writes."""

from __future__ import annotations

import csv
import io
import itertools
import json

import polars as pl
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from security_helpers import TABLES, snapshot, table_names

from core import store
from core.data.ingest import ingest_catalog, ingest_events
from core.errors import StudioError
from core.release.roles import SYSTEM

KNOWN = [
    "ts",
    "user_id",
    "item_id",
    "event_type",
    "session_id",
    "price",
    "dwell_ms",
    "position",
    "rating",
    "title",
    "category",
    "brand",
    "seller_id",
    "in_stock",
    "discount",
    "starts_at",
    "ends_at",
    "tier",
    "first_seen",
    "event_time",
    "product_id",
    "promotion_id",
]
HOSTILE = ['a"b', "x'); DROP TABLE events; --", "\x00", "$.user_id", "USER_ID", " ts ", "", "é", "a,b", "\n"]
VALUES = [
    "2024-05-01 10:00:00",
    "2024-05-01T10:00:00+02",
    "10000-01-01",
    "u1",
    "i1",
    "view",
    "purchase",
    "NaN",
    "inf",
    "1e309",
    "-3",
    "12.5",
    "",
    "true",
    "x\x00y",
    "a\tb",
    '"',
    "🙂",
    "Europe/Paris",
    "0",
]

names = st.one_of(st.sampled_from(KNOWN), st.sampled_from(HOSTILE), st.text(max_size=12))
values = st.one_of(st.sampled_from(VALUES), st.sampled_from(VALUES), st.text(max_size=12))
_files = itertools.count()


def csv_bytes(header, rows, quoted: bool) -> bytes:
    if quoted:
        buffer = io.StringIO()
        csv.writer(buffer).writerows([header, *rows])
        return buffer.getvalue().encode("utf-8", "surrogatepass")
    return ("\n".join(",".join(r) for r in [header, *rows]) + "\n").encode("utf-8", "surrogatepass")


@st.composite
def files(draw):
    """(file name, bytes): random bytes, or a CSV / JSON Lines / Parquet table of random names and values."""
    shape = draw(st.sampled_from(["bytes", "csv", "jsonl", "parquet"]))
    if shape == "bytes":
        return draw(st.sampled_from(["f.csv", "f.jsonl", "f.txt", "f.gz"])), draw(st.binary(max_size=400))
    header = draw(st.lists(names, min_size=1, max_size=7))
    if draw(st.booleans()):  # half the tables have what a load needs, among random columns
        needed = draw(st.sampled_from([["ts", "user_id", "item_id", "event_type"], ["item_id"], ["user_id"]]))
        header = draw(st.permutations(needed + header[:3]))
    rows = draw(
        st.lists(st.lists(values, min_size=len(header), max_size=len(header)), min_size=1, max_size=8)
    )
    if shape == "csv":
        return "f.csv", csv_bytes(header, rows, draw(st.booleans()))
    if shape == "jsonl":
        lines = [json.dumps(dict(zip(header, r, strict=True))) for r in rows]
        lines += draw(st.lists(st.sampled_from(["{oops", "[1]", "", '{"a": NaN}']), max_size=2))
        return "f.jsonl", ("\n".join(lines) + "\n").encode()
    header = list(dict.fromkeys(h for h in header if h))  # Parquet: distinct, non-empty names
    assume(header)
    try:
        frame = pl.DataFrame(
            {h: [r[i] for r in rows] for i, h in enumerate(header)}, schema=dict.fromkeys(header, pl.Utf8)
        )
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
    except Exception:  # a name or value polars will not write: not a file anyone has
        assume(False)
    return "f.parquet", buffer.getvalue()


def seed_other_tables(db) -> None:
    """Rows in the tables no load writes, so that "unchanged" means something."""
    with store.transaction(db) as con:
        con.execute("INSERT INTO rule_sets VALUES ('default', 1, 'd', '{}', 'me', now(), 'n')")
        con.execute("INSERT INTO model_runs (run_id, created_at, status) VALUES ('r1', now(), 'done')")
        store.audit(con, "me", "seed", "x")


WRITES = {  # the tables each kind of load may change
    "events": {"events", "items", "users", "ingests", "rejects"},
    "items": {"items", "ingests", "rejects"},
    "item_properties": {"items", "ingests", "rejects"},
    "category_tree": {"items", "ingests", "rejects"},
    "users": {"users", "ingests", "rejects"},
    "sellers": {"sellers", "ingests", "rejects"},
    "promotions": {"promotions", "ingests", "rejects"},
}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(file=files(), loader=st.sampled_from(["events", "catalog"]))
def test_any_file_ends_in_a_result_or_a_clear_error(db, tmp_path, file, loader):
    if not store.scalar("SELECT count(*) FROM rule_sets", db_path=db):
        seed_other_tables(db)
    name, data = file
    path = tmp_path / f"{next(_files)}-{name}"
    path.write_bytes(data)
    tables, before = table_names(db), snapshot(db)
    load = ingest_events if loader == "events" else ingest_catalog
    try:
        result = load(path, db_path=db, actor=SYSTEM)
    except StudioError:
        event(f"{loader}: refused")
        assert snapshot(db) == before  # refused: nothing written
        return
    event(f"{loader}: loaded, {'some' if result.loaded else 'no'} rows loaded")
    assert result.rows_read == result.loaded + result.rejected + result.duplicates
    after = snapshot(db)
    changed = {t for t in TABLES if after[t] != before[t]}
    assert changed <= WRITES[result.kind] | {"audit_log"}  # every load is audited
    assert table_names(db) == tables
    assert len(after["ingests"]) == len(before["ingests"]) + 1
    stored_rejects = store.scalar(
        "SELECT count(*) FROM rejects WHERE ingest_id = ?", [result.ingest_id], db_path=db
    )
    assert stored_rejects == result.rejected
    if loader == "events":
        added = store.scalar(
            "SELECT count(*) FROM events WHERE ingest_id = ?", [result.ingest_id], db_path=db
        )
        assert added == result.loaded
