"""Server files through the browser: the app loads only files inside the import folders (resolved, symlinks
followed, then checked); uploads get safe names and are removed after a week; the CLI loads any path."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import store
from core.data import imports
from core.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
LOG = "ts,user_id,item_id,event_type\n2024-05-01 10:00:00,u1,i1,view\n"


@pytest.mark.parametrize(
    "typed", ["/etc/passwd", "/etc/../etc/passwd", "../shop.duckdb", "../../../../etc/passwd", "sub/../../x"]
)
def test_a_path_outside_the_import_folders_is_refused_naming_them(import_dir, typed):
    with pytest.raises(InputError, match="only loads files from its import folder") as info:
        imports.confine(typed)
    assert str(import_dir) in str(info.value)


def test_a_symlink_inside_the_import_folder_to_a_server_file_is_refused(import_dir):
    (import_dir / "innocent.csv").symlink_to("/etc/passwd")
    with pytest.raises(InputError, match="import folder"):
        imports.confine(str(import_dir / "innocent.csv"))


def test_a_file_in_the_import_folder_is_accepted_by_absolute_or_relative_path(import_dir):
    (import_dir / "sub").mkdir()
    (import_dir / "sub" / "log.csv").write_text(LOG)
    assert imports.confine(str(import_dir / "sub" / "log.csv")) == import_dir / "sub" / "log.csv"
    assert imports.confine("sub/log.csv") == import_dir / "sub" / "log.csv"


def test_hs_import_dirs_sets_the_folders(db, tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("HS_IMPORT_DIRS", os.pathsep.join([str(first), str(second)]))
    assert imports.import_dirs() == [first, second]
    assert imports.confine(str(second / "x.csv")) == second / "x.csv"
    with pytest.raises(InputError, match="import folders"):
        imports.confine(str(tmp_path / "c" / "x.csv"))


@pytest.mark.parametrize(
    "name, safe",
    [
        ("", "upload"),
        (".", "upload"),
        ("..", "upload"),
        ("../x", "x"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\win.csv", "win.csv"),
        (".hidden.csv", "hidden.csv"),
        ("log 2024 (1).csv.gz", "log_2024_1_.csv.gz"),
        ("a\x00b.csv", "a_b.csv"),
        ("x" * 500 + ".parquet", "x" * 112 + ".parquet"),
    ],
)
def test_upload_names_are_made_safe(name, safe):
    assert imports.safe_name(name) == safe


def test_an_upload_lands_inside_the_uploads_folder(db):
    path = imports.save_upload("../../escape.csv", LOG.encode())
    uploads = db.parent / "uploads"
    assert path.is_relative_to(uploads)
    assert path.name == "escape.csv"
    assert path.read_text() == LOG


def test_uploads_older_than_a_week_are_removed(db):
    old = imports.save_upload("old.csv", b"x")
    new = imports.save_upload("new.csv", b"x")
    week_ago = time.time() - imports.UPLOAD_MAX_AGE_S - 60
    os.utime(old.parent, (week_ago, week_ago))
    imports.save_upload("next.csv", b"x")  # each upload clears the old ones first
    assert not old.parent.exists()
    assert new.exists()


@pytest.fixture
def admin_token(db):
    """The Data page is an admin's: a signed-in admin's session token in this store."""
    from core.release import auth
    from tests.conftest import ACCOUNTS, make_accounts

    make_accounts({"ada": ACCOUNTS["ada"]})
    return auth.sign_in("ada", ACCOUNTS["ada"][1]).token


def data_page(token: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages/data.py"), default_timeout=60)
    at.session_state["session_token"] = token
    return at.run()


def test_the_data_page_refuses_a_server_file_in_an_error_box(db, admin_token):
    at = data_page(admin_token)
    at.radio[1].set_value("Path on the server").run()
    at.text_input[0].input("/etc/passwd").run()
    at.button[0].click().run()
    assert not at.exception
    assert any("only loads files from its import folder" in e.value for e in at.error)
    assert store.scalar("SELECT count(*) FROM ingests", db_path=db) == 0


def test_the_data_page_loads_a_file_from_the_import_folder(db, import_dir, admin_token):
    (import_dir / "log.csv").write_text(LOG)
    at = data_page(admin_token)
    at.radio[1].set_value("Path on the server").run()
    at.text_input[0].input("log.csv").run()
    at.button[0].click().run()
    assert not at.exception
    assert any("loaded 1" in s.value for s in at.success)


def test_the_cli_loads_a_file_anywhere(tmp_path):
    log = tmp_path / "elsewhere" / "log.csv"
    log.parent.mkdir()
    log.write_text(LOG)
    db = tmp_path / "data" / "shop.duckdb"
    env = os.environ | {"HS_DB": str(db), "HS_DATA": str(db.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "core", "ingest", str(log)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "loaded 1" in done.stdout
