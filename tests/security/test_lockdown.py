"""Defence in depth: every connection runs on a locked-down DuckDB instance, so even SQL we did not mean to
run cannot read server files, write outside the data folder, attach databases or undo the lock."""

from __future__ import annotations

import duckdb
import pytest

from core import store
from core.data.ingest import ingest_events
from core.errors import StorageError
from core.release.roles import SYSTEM

REFUSED = [
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_csv('/etc/passwd', sep = ':')",
    "COPY (SELECT 1) TO '/tmp/hs-lockdown-probe.csv'",
    "ATTACH '/tmp/hs-lockdown-probe.duckdb' AS other",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET allowed_directories",
    "SET allowed_directories = ['/']",
    "INSTALL httpfs",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_a_statement_reaching_outside_is_refused(db, sql):
    with pytest.raises((duckdb.Error, StorageError)):
        with store.connect(db) as con:
            con.execute(sql).fetchall()


def test_reading_etc_hostname_says_the_files_are_out_of_reach(db):
    with pytest.raises(StorageError, match="may only read files in the import folders"):
        with store.connect(db) as con:
            con.execute("SELECT content FROM read_text('/etc/hostname')").fetchall()


def test_the_lock_holds_on_every_cursor_of_the_shared_instance(db):
    with store.connect(db) as one, store.connect(db) as two:
        for con in (one, two):
            settings = con.execute(
                "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"
            ).fetchall()[0]
            assert settings == (False, True)


def test_the_import_and_upload_folders_are_reachable(db, import_dir):
    (import_dir / "x.csv").write_text("a\n1\n")
    uploads = db.parent / "uploads"
    uploads.mkdir()
    with store.connect(db) as con:
        assert con.execute(f"SELECT a FROM read_csv('{import_dir / 'x.csv'}')").fetchall() == [(1,)]
        con.execute(f"COPY (SELECT 2 AS b) TO '{uploads / 'out.csv'}'")
    assert (uploads / "out.csv").read_text().split() == ["b", "2"]


@pytest.mark.parametrize(
    "target",
    ["shop.duckdb.copy", "models/model.pt", "note.csv", "releases/1/items.parquet", "audit/x.parquet"],
)
def test_the_rest_of_the_data_folder_cannot_be_written(db, target):
    """The database's own folder is not a place files are loaded from: an injection cannot write there
    (over a model run, a release artifact — written by polars, never by DuckDB —, beside the database)."""
    (db.parent / target).parent.mkdir(parents=True, exist_ok=True)
    with pytest.raises(StorageError):
        with store.connect(db) as con:
            con.execute(f"COPY (SELECT 1) TO '{db.parent / target}'")
    assert not (db.parent / target).exists()


def test_no_database_beside_the_store_can_be_attached(db):
    """ATTACH is file access like any other: a copy of the store, or a new database beside it, is refused."""
    with pytest.raises(StorageError):
        with store.connect(db) as con:
            con.execute(f"ATTACH '{db.parent / 'copy.duckdb'}' AS copy")
    assert not (db.parent / "copy.duckdb").exists()


def test_a_file_named_by_a_trusted_caller_is_reachable_only_for_its_unit_of_work(db, tmp_path):
    """The CLI loads any file: the instance opens with that one path allowed, and the next unit of work
    (another instance: the last one closed) cannot read it."""
    log = tmp_path / "outside.csv"
    log.write_text("ts,user_id,item_id,event_type\n2024-05-01 10:00:00,u1,i1,view\n")
    assert ingest_events(log, db_path=db, actor=SYSTEM).loaded == 1
    with pytest.raises(StorageError):
        with store.connect(db) as con:
            con.execute(f"SELECT * FROM read_csv('{log}')").fetchall()


def test_a_symlink_in_an_import_folder_does_not_reach_outside(db, import_dir):
    (import_dir / "hostname.csv").symlink_to("/etc/hostname")
    with pytest.raises(StorageError):
        with store.connect(db) as con:
            con.execute(f"SELECT * FROM read_text('{import_dir / 'hostname.csv'}')").fetchall()
