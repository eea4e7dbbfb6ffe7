"""Bad rows land in ``rejects`` with their physical line, raw text and an actionable reason; counts are
conserved; a failure mid-load leaves the store as it was; old databases are migrated in place; random
malformed CSV never crashes the loader nor loses a good row."""

from __future__ import annotations

import itertools
import subprocess
import sys

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import migrations, store
from core.data import ingest as ingest_mod
from core.data import ingest_support
from core.data import stage as stage_mod
from core.data.ingest import ingest_events, rejects_for
from core.errors import InputError
from core.release.roles import SYSTEM

HEADER = "ts,user_id,item_id,event_type,session_id,price,page"
GOOD = "2024-05-01 10:00:00,u0,i0,view,s,1.5,home"

BAD = {  # raw line → what the reason must say
    "notatime,u1,i1,view,s,1,p": "unparseable timestamp 'notatime'",
    "2024-05-01 10:00:00,u1,i1,clik,s,1,p": "unknown event type 'clik' — event_type must be one of view,",
    "2024-05-01 10:00:00,u1,i1,view,s,abc,p": "non-numeric price 'abc'",
    "2024-05-01 10:00:00,u1,i1,view,s,-3,p": "negative price -3",
    "2024-05-01 10:00:00,,i1,view,s,1,p": "missing user id",
    "2024-05-01 10:00:00,u1,  ,view,s,1,p": "missing item id",
    ",u1,i1,view,s,1,p": "missing timestamp",
    "2024-05-01 10:00:00,u1,i1,view": "wrong column count: 4 fields, expected 7",
    "2024-05-01 10:00:00,u1,i1,view,s,1,p,extra": "wrong column count: 8 fields, expected 7",
    '2024-05-01 10:00:00,u1,i1,view,s,1,"unterminated': "wrong quoting",
    "2024-13-45 10:00:00,u1,i1,view,s,1,p": "unparseable timestamp",
}


def rejects(r, db):
    return {row["line_no"]: row for row in rejects_for(r.ingest_id, db_path=db).to_dicts()}


def counts(db):
    return {
        t: store.scalar(f"SELECT count(*) FROM {t}", db_path=db)
        for t in ("events", "items", "users", "ingests", "rejects")
    }


def test_every_bad_row_kind_with_line_raw_and_reason(db, tmp_path):
    body = [HEADER, GOOD, ""] + list(BAD) + ['2024-05-01 10:00:01,u2,i2,click,s,2,"a, quoted ""page"""', ""]
    data = (
        "\r\n".join(body).encode()
        + b"2024-05-01 10:00:00,u\xff1,i1,view,s,1,p\r\n"
        + GOOD.replace("u0", "u3").encode()
        + b"\r\nnotatime,u\xc3\xa9,i1,view,s,1,p\r\n"
    )
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    r = ingest_events(path, db_path=db, actor=SYSTEM)
    assert r.rows_read == r.loaded + r.rejected + r.duplicates
    assert (r.loaded, r.rejected, r.duplicates) == (3, len(BAD) + 2, 0)
    got = rejects(r, db)
    for line_no, (raw, reason) in enumerate(BAD.items(), start=4):  # header 1, good 2, blank 3
        assert reason in got[line_no]["reason"], (line_no, got[line_no])
        assert got[line_no]["raw"] == raw
    n = len(body)  # the last element is empty: the undecodable line is line n
    assert "encoding" in got[n]["reason"] and "UTF-8" in got[n]["reason"]
    # after a skipped (undecodable) line the numbering stays physical
    assert got[n + 2]["raw"] == "notatime,ué,i1,view,s,1,p" and "timestamp" in got[n + 2]["reason"]
    page = store.scalar("SELECT page FROM events WHERE user_id = 'u2'", db_path=db)
    assert page == 'a, quoted "page"'
    stored = store.query("SELECT * FROM ingests", db_path=db).to_dicts()[0]
    assert (stored["rows_read"], stored["loaded"], stored["rejected"]) == (r.rows_read, 3, len(BAD) + 2)


def test_rees46_and_retailrocket_rejects(db, tmp_path):
    rees = tmp_path / "rees.csv"
    rees.write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
        "2019-10-01 00:00:17 UTC,view,1,2,,,357.79,513642368,s1\n"
        "2019-10-01 00:00:18 UTC,click,1,2,,,357.79,513642368,s1\n"
        "2019-10-01 00:00:19 UTC,view,1,2,,,free,513642368,s1\n"
        "yesterday,view,1,2,,,1,513642368,s1\n"
    )
    r = ingest_events(rees, db_path=db, actor=SYSTEM)
    got = rejects(r, db)
    assert (r.loaded, r.rejected) == (1, 3)
    assert "'click'" in got[3]["reason"] and "cart" in got[3]["reason"]
    assert "non-numeric price 'free'" in got[4]["reason"]
    assert "unparseable timestamp 'yesterday'" in got[5]["reason"]
    rr = tmp_path / "rr.csv"
    rr.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n1433221332117,1,view,2,\nsoon,1,view,3,\n"
        "1433221332118,1,buy,3,\n"
    )
    r = ingest_events(rr, db_path=db, actor=SYSTEM)
    got = rejects(r, db)
    assert (r.loaded, r.rejected) == (1, 2) and set(got) == {3, 4}
    assert "'buy'" in got[4]["reason"] and "addtocart" in got[4]["reason"]


def test_sequence_rejects_count_lines(db, tmp_path):
    path = tmp_path / "seq.txt"
    path.write_bytes(b"1 10 11\n2\n\n3 12 13 14\n4 1\xff2\n")
    r = ingest_events(path, "sequence", db_path=db, actor=SYSTEM)
    assert (r.loaded, r.rejected) == (5, 2) and r.rows_read == 7
    got = rejects(r, db)
    assert set(got) == {2, 5} and "user item" in got[2]["reason"] and "UTF-8" in got[5]["reason"]


def test_clean_csv_takes_the_parallel_path_irregular_falls_back(db, tmp_path, monkeypatch):
    staged = []
    real = ingest_mod._stage
    monkeypatch.setattr(ingest_mod, "_stage", lambda *a, **k: staged.append(1) or real(*a, **k))
    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join([HEADER, GOOD, "notatime,u1,i1,view,s,1,p", GOOD.replace("u0", "u2")]) + "\n")
    r = ingest_events(clean, db_path=db, actor=SYSTEM)
    assert (r.loaded, r.rejected, staged) == (2, 1, [])
    assert rejects(r, db)[3]["raw"] == "notatime,u1,i1,view,s,1,p"
    # a blank line and a rejected line with quotes: neither its text nor the reader's row numbers it
    irregular = tmp_path / "irregular.csv"
    quoted_bad = 'notatime,u1,i1,view,s,1,"a, b"'
    irregular.write_text("\n".join([HEADER, GOOD.replace("u0", "u5"), "", quoted_bad]) + "\n")
    r = ingest_events(irregular, db_path=db, actor=SYSTEM)
    assert (r.loaded, r.rejected, staged) == (1, 1, [1])
    assert {line: row["raw"] for line, row in rejects(r, db).items()} == {4: quoted_bad}
    assert counts(db)["events"] == 3


def test_catalog_rejects_bad_lines_on_their_own_with_exact_line_numbers(db, tmp_path):
    from core.data.ingest import ingest_catalog

    path = tmp_path / "items.csv"
    path.write_bytes(
        b"item_id,title,price,brand\n"  # 1
        b"a,Alpha,10,acme\n"  # 2
        b"\n"  # 3: blank, not a row
        b"b,B\xe9ta,5,acme\n"  # 4: Latin-1, not UTF-8
        b"c,Gamma,7\n"  # 5: a field missing
        b'd,"Delta, the big one",-2,acme\n'  # 6: quoted comma, negative price
        b"e,Epsilon,3,acme\n"  # 7
    )
    r = ingest_catalog(path, db_path=db, actor=SYSTEM)
    assert (r.rows_read, r.loaded, r.rejected) == (5, 2, 3)
    got = rejects(r, db)
    assert set(got) == {4, 5, 6}
    assert "UTF-8" in got[4]["reason"]
    assert got[5]["reason"].startswith("wrong column count: 3 fields, expected 4")
    assert got[5]["raw"] == "c,Gamma,7"
    assert "negative price" in got[6]["reason"]
    assert sorted(store.query("SELECT item_id FROM items", db_path=db)["item_id"]) == ["a", "e"]


def test_catalog_with_only_a_header_is_refused_and_writes_nothing(db, tmp_path):
    from core.data.ingest import ingest_catalog

    path = tmp_path / "items.csv"
    path.write_text("item_id,title\n")
    before = counts(db)
    with pytest.raises(InputError, match="no rows"):
        ingest_catalog(path, db_path=db, actor=SYSTEM)
    assert counts(db) == before


@pytest.mark.parametrize("irregular", [False, True], ids=["parallel-path", "line-path"])
@pytest.mark.parametrize("step", ["find_duplicates", "_upsert_items_from_events", "_upsert_users"])
def test_failure_mid_load_leaves_counts_unchanged(db, tmp_path, monkeypatch, step, irregular):
    first = tmp_path / "first.csv"
    first.write_text("\n".join([HEADER, GOOD, "bad,row"]) + "\n")
    ingest_events(first, db_path=db, actor=SYSTEM)
    before = counts(db)
    more = tmp_path / "more.csv"
    more.write_text(
        "\n".join(
            [HEADER] + [GOOD.replace("u0", f"n{i}") for i in range(50)] + (list(BAD) if irregular else [])
        )
        + "\n"
    )

    def crash(*args, **kwargs):
        raise RuntimeError("killed mid-load")

    monkeypatch.setattr(f"core.data.ingest.{step}", crash)
    with pytest.raises(RuntimeError, match="killed"):
        ingest_events(more, db_path=db, actor=SYSTEM)
    assert counts(db) == before
    monkeypatch.undo()
    r = ingest_events(more, db_path=db, actor=SYSTEM)  # and the same file loads fine afterwards
    assert r.loaded == 50 and counts(db)["events"] == before["events"] + 50


@pytest.mark.parametrize(
    "extra, parallel, by_parse",
    [
        ([], True, False),  # found by their text
        (['2024-05-01 10:00:00,u1,i1,clik,s,1,"a, b"'], True, True),  # a quoted rejected line
        ([""], True, False),  # a blank line: the line reader numbers past it
        (["", '2024-05-01 10:00:00,u1,i1,clik,s,1,"a, b"'], False, False),  # both: rows ≠ lines
    ],
    ids=["found-by-text", "quoted-line", "blank-line", "quoted-and-blank"],
)
def test_rejected_rows_numbered_on_the_parallel_path(db, tmp_path, monkeypatch, extra, parallel, by_parse):
    """Rejected rows of a file the parallel parser reads get their physical line and raw text. They are
    found by their text rebuilt from the fields, twice-repeated lines and blank lines included. A rejected
    line with quotes rebuilds differently: the ordered parse numbers the rows instead, which needs every
    line to be one row, else the file is read line by line. Whichever way, the rejects are the same."""
    staged, parsed = [], []
    real_stage_fast, real_by_parse = ingest_mod._stage_fast, stage_mod._number_by_parse
    monkeypatch.setattr(
        ingest_mod, "_stage_fast", lambda *a, **k: staged.append(real_stage_fast(*a, **k)) or staged[-1]
    )
    monkeypatch.setattr(
        stage_mod, "_number_by_parse", lambda *a, **k: parsed.append(1) or real_by_parse(*a, **k)
    )
    bad = "2024-05-01 10:00:00,u1,i1,clik,s,1,p"
    lines = [HEADER, GOOD, bad, GOOD.replace("u0", "u2"), bad, *extra]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    r = ingest_events(path, db_path=db, actor=SYSTEM)
    assert (staged[0] is not None) == parallel
    assert bool(parsed) == by_parse
    got = rejects(r, db)
    want = {3: bad, 5: bad} | {n + 1: line for n, line in enumerate(lines) if line.endswith('"a, b"')}
    assert {line: row["raw"] for line, row in got.items()} == want
    assert all(row["reason"].startswith("unknown event type 'clik'") for row in got.values())
    assert (r.loaded, r.rejected) == (2, len(want))


def test_early_flush_keeps_the_database_locked(db, tmp_path, monkeypatch):
    """Mid-load, after the events are flushed early, another process still cannot open the file: the flush
    must not release DuckDB's lock (closing a second descriptor of the file would)."""
    real_flush = ingest_mod.flush_in_background
    probes = []

    def flush_then_probe(con):
        assert ingest_support.open_descriptor(str(db)) is not None  # the flush has DuckDB's descriptor to use
        thread = real_flush(con)
        thread.join()
        probe = f"import duckdb; duckdb.connect({str(db)!r}).close()"
        probes.append(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True))
        return thread

    monkeypatch.setattr(ingest_mod, "flush_in_background", flush_then_probe)
    path = tmp_path / "log.csv"
    path.write_text("\n".join([HEADER, GOOD]) + "\n")
    assert ingest_events(path, db_path=db, actor=SYSTEM).loaded == 1
    assert len(probes) == 1
    assert probes[0].returncode != 0 and "lock" in probes[0].stderr.lower()


def test_migrates_an_old_database_in_place(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(migrations.MIGRATIONS[0])
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMP)")
    con.execute("INSERT INTO schema_version VALUES (1, now())")
    con.execute(
        "INSERT INTO events (ts, user_id, item_id, event_type) VALUES ('2024-01-01', 'old', 'x', 'view')"
    )
    con.close()
    store._migrated.discard(str(path.resolve()))
    with store.connect(path) as con:
        version = con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert version == migrations.SCHEMA_VERSION
    assert {"model_runs", "rule_sets", "releases", "audit_log"} <= tables
    assert store.scalar("SELECT user_id FROM events", db_path=path) == "old"
    csv = tmp_path / "e.csv"
    csv.write_text("ts,user_id,item_id,event_type\n2024-01-02 00:00:00,new,x,view\n")
    assert ingest_events(csv, db_path=path, actor=SYSTEM).loaded == 1
    assert store.scalar("SELECT count(*) FROM events", db_path=path) == 2


# ------------------------------------------------------------------------------------------ fuzzing

GARBAGE_CHARS = st.sampled_from(list(',"; \t:-.xyzé€0129') + ["\x00", "\\", "'", "{", "}"])
garbage_line = st.one_of(
    st.text(GARBAGE_CHARS, max_size=40).map(str.encode),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
    st.sampled_from([b"2024-05-01 10:00:00,u,i,view,s,1", b'"', b",,,,,,", b'2024-05-01,"u,1",i,view,,,']),
)
_dbs = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.one_of(st.integers(0, 5), garbage_line), min_size=1, max_size=25), crlf=st.booleans()
)
def test_malformed_csv_never_crashes_nor_loses_good_rows(tmp_path, lines, crlf):
    db = tmp_path / f"fuzz{next(_dbs)}.duckdb"
    good, body = [], []
    for line in lines:
        if isinstance(line, int):  # a good row; repeats of the same key are duplicates
            text = f"2024-05-01 10:00:0{line},u{line},i{line},view,s,{line},p"
            good.append(text)
            body.append(text.encode())
        else:
            body.append(line)
    path = db.with_suffix(".csv")
    path.write_bytes((b"\r\n" if crlf else b"\n").join([HEADER.encode()] + body) + b"\n")
    try:
        r = ingest_events(path, db_path=db, actor=SYSTEM)
    except InputError as exc:  # only when no line after the header has any content
        assert "no rows" in str(exc) and not good and all(not line.strip(b" ") for line in body)
        return
    assert r.rows_read == r.loaded + r.rejected + r.duplicates
    distinct_good = len(set(good))
    assert r.loaded >= distinct_good  # every good row loaded (or a duplicate of one that was)
    stored = set(store.query("SELECT user_id FROM events", db_path=db)["user_id"])
    assert {f"u{g.split(',')[1][1:]}" for g in good} <= stored
    assert r.loaded + r.duplicates >= len(good)
    assert store.scalar("SELECT count(*) FROM rejects WHERE line_no IS NULL OR line_no < 2", db_path=db) == 0


def _load_both_ways(tmp_path, body: bytes, n: int, monkeypatch):
    """Ingest ``body`` twice into fresh stores: as the loader chooses, and forced line by line."""
    path = tmp_path / f"diff{n}.csv"
    path.write_bytes(body)
    out = []
    for forced in (False, True):
        db = tmp_path / f"diff{n}_{int(forced)}.duckdb"
        with monkeypatch.context() as m:
            if forced:
                m.setattr(ingest_mod, "_stage_fast", lambda *a, **k: None)
            try:
                r = ingest_events(path, db_path=db, actor=SYSTEM)
            except InputError as exc:
                out.append(("error", str(exc).split(":")[-1]))
                continue
        rej = store.query("SELECT line_no, reason, raw FROM rejects ORDER BY line_no", db_path=db).rows()
        events = store.query(
            "SELECT ts, user_id, item_id, event_type, session_id, price, page FROM events ORDER BY ALL",
            db_path=db,
        ).rows()
        items = store.query(
            "SELECT item_id, category, brand, price FROM items ORDER BY ALL", db_path=db
        ).rows()
        out.append(((r.rows_read, r.loaded, r.rejected, r.duplicates), rej, events, items))
    return out


ROW = st.builds(
    lambda sec, u, i, et, s, price, page: f"2024-05-01 10:00:{sec:02d},{u},{i},{et},{s},{price},{page}",
    st.integers(0, 3),
    st.sampled_from(["u1", "u2", ""]),
    st.sampled_from(["i1", "i2", ""]),
    st.sampled_from(["view", "click", "purchase", "clik", "VIEW"]),
    st.sampled_from(["s", ""]),
    st.sampled_from(["1.5", "", "-2", "abc"]),
    st.sampled_from(["home", '"a, b"', ""]),
)


IRREGULAR = st.sampled_from(["", "2024-05-01 10:00:00,u1", "x,y,z,view,s,1,p,extra"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(ROW, min_size=1, max_size=20),
    # two files in three are regular (the parallel path); the others get a line that sends them down the
    # line path
    irregular=st.one_of(st.none(), st.none(), IRREGULAR),
    at=st.integers(0, 20),
    crlf=st.booleans(),
)
def test_parallel_and_line_paths_agree(tmp_path, monkeypatch, rows, irregular, at, crlf):
    """Whichever path loads a file, counts, rejects (line, reason, raw) and stored events are the same."""
    if irregular is not None:
        rows = [*rows[:at], irregular, *rows[at:]]
    body = (("\r\n" if crlf else "\n").join([HEADER, *rows]) + "\n").encode()
    fast, line = _load_both_ways(tmp_path, body, next(_dbs), monkeypatch)
    assert fast == line


REES46_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
EMPTY = st.sampled_from(["", '""'])  # an empty field, bare or quoted: both mean "no value"
REES46_ROW = st.builds(
    lambda *fields: ",".join(fields),
    st.sampled_from(["2019-10-01 00:00:01 UTC", "2019-10-01 00:00:02 UTC", "2019-10-01T00:00:01Z", "bad"]),
    st.sampled_from(["view", "cart", "Cart", "VIEW", "purchase", "remove_from_cart", "click"]),
    st.one_of(st.sampled_from(["101", "102"]), EMPTY),
    st.just("2053013554658804075"),
    st.one_of(st.sampled_from(["electronics.audio", '"a, b"']), EMPTY),
    st.one_of(st.just("apple"), EMPTY),
    st.one_of(st.sampled_from(["1.5", "-2", "abc"]), EMPTY),
    st.one_of(st.just("513642368"), EMPTY),
    st.one_of(st.just("e937725e-df44"), EMPTY),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(REES46_ROW, min_size=1, max_size=15))
def test_rees46_parallel_and_line_paths_agree(tmp_path, monkeypatch, rows):
    """REES46 on the parallel path reads fields as DuckDB's parser gives them (no trim, no empty-string
    check): empty and quoted-empty fields, event names in any case and bad values end the same as line by
    line — counts, rejects, events and the items derived from them."""
    body = ("\n".join([REES46_HEADER, *rows]) + "\n").encode()
    fast, line = _load_both_ways(tmp_path, body, next(_dbs), monkeypatch)
    assert fast == line
