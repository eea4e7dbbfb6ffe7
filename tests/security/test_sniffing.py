"""A file that is not what it is said to be is refused, saying what it looks like, and nothing is written:
a CSV given as a sequence file, a system file, an event log given to the catalog loader, compressed or
UTF-16 files without the name saying so, archives, a 10 MB "line"."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from security_helpers import snapshot

from core.data.ingest import ingest_catalog, ingest_events
from core.errors import InputError
from core.release.roles import SYSTEM

ROOT = Path(__file__).resolve().parents[2]
NATIVE = "ts,user_id,item_id,event_type\n" + "".join(
    f"2024-05-0{d} 10:00:00,u{d},i{d},view\n" for d in range(1, 8)
)
REES46 = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
    "2019-10-01 00:00:17 UTC,view,1,2,,,357.79,513642368,s1\n"
)
PASSWD = "".join(f"user{i}:x:{1000 + i}:{1000 + i}:User {i},,,:/home/user{i}:/bin/bash\n" for i in range(30))


@pytest.mark.parametrize(
    "content, fmt, says",
    [
        (NATIVE, "sequence", "looks like a native event log"),
        (NATIVE, "pairs", "looks like a native event log"),
        (REES46, "sequence", "looks like a REES46 event log"),
        (PASSWD, "sequence", "is not a sequence file"),
        (PASSWD, "pairs", "is not a pairs file"),
        ("1 10 11\n2 11 12\n3 10 13\n", "native", "looks like a sequence file"),
        (REES46, "native", "looks like a REES46 event log"),
    ],
)
def test_a_file_that_does_not_fit_the_format_is_refused(db, tmp_path, content, fmt, says):
    path = tmp_path / "file.txt"
    path.write_text(content)
    before = snapshot(db)
    with pytest.raises(InputError, match=says):
        ingest_events(path, fmt, db_path=db, actor=SYSTEM)
    assert snapshot(db) == before


@pytest.mark.parametrize("kind", [None, "items", "users"])
def test_an_event_log_given_to_the_catalog_loader_is_refused(db, tmp_path, kind):
    path = tmp_path / "events.csv"
    path.write_text(NATIVE)
    before = snapshot(db)
    with pytest.raises(InputError, match="is an event log, not a catalog — it looks like a native event log"):
        ingest_catalog(path, kind, db_path=db, actor=SYSTEM)
    assert snapshot(db) == before


def _zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("log.csv", text)
    return buffer.getvalue()


FILES = {  # name, bytes → what the refusal says
    "gzip-named-csv": (
        "log.csv",
        gzip.compress(NATIVE.encode()),
        "gzip-compressed, but its name does not end in .gz",
    ),
    "plain-named-gz": ("log.csv.gz", NATIVE.encode(), "is named .gz but is not gzip-compressed"),
    "utf16-bom": ("log.csv", NATIVE.encode("utf-16"), "is UTF-16 text"),
    "utf16-no-bom": ("log.csv", NATIVE.encode("utf-16-le"), "is UTF-16 text"),
    "zip": ("log.csv", _zip(NATIVE), "is a ZIP archive"),
    "no-line-ends": ("log.csv", b"ts,user_id," + b"x" * (10 << 20), "has no line end in its first 1 MB"),
    "json-array": (
        "log.json",
        b'[{"ts": "2024-05-01", "user_id": "u"}]',
        "is one JSON array, not JSON Lines",
    ),
    "png": ("log.csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "is a PNG image"),
}


@pytest.mark.parametrize("case", sorted(FILES))
def test_a_file_that_is_not_a_text_log_is_refused_saying_what_it_is(db, tmp_path, case):
    name, data, says = FILES[case]
    path = tmp_path / name
    path.write_bytes(data)
    before = snapshot(db)
    for load in (ingest_events, ingest_catalog):
        with pytest.raises(InputError, match=says):
            load(path, db_path=db, actor=SYSTEM)
    assert snapshot(db) == before


def test_a_real_gz_file_is_read(db, tmp_path):
    path = tmp_path / "log.csv.gz"
    path.write_bytes(gzip.compress(NATIVE.encode()))
    assert ingest_events(path, db_path=db, actor=SYSTEM).loaded == 7


def run_cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"HS_DB": str(db), "HS_DATA": str(db.parent)}
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("case", ["gzip-named-csv", "utf16-bom", "no-line-ends"])
def test_the_cli_ends_in_one_sentence_and_exit_code_2(tmp_path, case):
    name, data, says = FILES[case]
    path = tmp_path / name
    path.write_bytes(data)
    done = run_cli("ingest", str(path), db=tmp_path / "data" / "shop.duckdb")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]  # (the rest: tqdm)
    assert len(errors) == 1
    assert says in errors[0]


def test_the_cli_refuses_a_csv_given_as_sequence_with_exit_code_2(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(NATIVE)
    done = run_cli("ingest", str(path), "--format", "sequence", db=tmp_path / "data" / "shop.duckdb")
    assert done.returncode == 2
    assert "looks like a native event log" in done.stderr
    assert "Traceback" not in done.stderr


def _truncated_gzip() -> bytes:
    rows = "".join(
        f"2024-05-01 10:00:00,u{i * 7919 % 10007},i{i * 104729 % 10009},view\n" for i in range(30000)
    )
    data = gzip.compress(("ts,user_id,item_id,event_type\n" + rows).encode())
    return data[: len(data) // 2]


ODD = {  # a file no one should load → what the refusal says
    "deep.jsonl": (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "missing required column"),
    "corrupt.parquet": (b"PAR1" + bytes(range(256)) * 2 + b"PAR1", "Parquet"),
    "truncated.csv.gz": (_truncated_gzip(), "damaged gzip"),
    "wide.csv": ((",".join(f"c{i}" for i in range(1500)) + "\n1\n").encode(), "unknown format"),
}


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_files_end_in_a_clear_message(db, tmp_path, name):
    data, says = ODD[name]
    path = tmp_path / name
    path.write_bytes(data)
    before = snapshot(db)
    with pytest.raises(InputError, match=says):
        ingest_events(path, db_path=db, actor=SYSTEM)
    assert snapshot(db) == before


def test_too_many_columns_are_refused_when_the_format_is_given(db, tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("ts,user_id,item_id,event_type," + ",".join(f"c{i}" for i in range(1500)) + "\n")
    with pytest.raises(InputError, match="1,504 columns; a log or catalog has at most 1,000"):
        ingest_events(path, "native", db_path=db, actor=SYSTEM)


def test_a_pipe_is_not_read(db, tmp_path):
    fifo = tmp_path / "log.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        ingest_events(fifo, db_path=db, actor=SYSTEM)
