"""Storage that refuses, for real: a database folder on a read-only file system and a full disk, each made
in a private mount namespace (``unshare -rm``: a read-only bind mount, a 3 MB tmpfs). The CLI ends in one
sentence that names the cause and the fix, with exit code 2, and what was stored before is still there."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = "ts,user_id,item_id,event_type\n2024-05-01 10:00:00,u1,i1,view\n"


def _namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _namespaces_work(),
    reason="needs unprivileged mount namespaces (unshare -rm) to make the storage fail",
)


def in_namespace(setup: str, commands: list[list[str]], data: Path) -> list[subprocess.CompletedProcess]:
    """Run ``setup`` (mounts) then each CLI command in one private mount namespace; each command's result."""
    env = f"HS_DATA={shlex.quote(str(data))} HS_DB={shlex.quote(str(data / 'shop.duckdb'))}"
    runs = []
    for i, args in enumerate(commands):
        cli = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "core", *args])
        runs.append(f"{env} {cli} >{data.parent}/out{i} 2>{data.parent}/err{i}; echo $? >{data.parent}/rc{i}")
    script = f"{setup} && {{ {'; '.join(runs)}; }}"
    subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=ROOT, check=True, timeout=300)
    return [
        subprocess.CompletedProcess(
            args,
            int((data.parent / f"rc{i}").read_text()),
            (data.parent / f"out{i}").read_text(),
            (data.parent / f"err{i}").read_text(),
        )
        for i, args in enumerate(commands)
    ]


def the_error(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_a_read_only_database_folder_is_named_with_the_fix(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    log = tmp_path / "log.csv"
    log.write_text(SMALL)
    setup = f"mount --bind {data} {data} && mount -o remount,ro,bind {data}"
    (done,) = in_namespace(setup, [["ingest", str(log)]], data)
    assert done.returncode == 2
    error = the_error(done)
    assert "read-only file system" in error
    assert "set HS_DATA" in error


def test_a_full_disk_is_named_and_what_was_stored_stays(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text(SMALL)
    rows = "".join(
        f"2024-05-01 10:{i // 60 % 60:02d}:{i % 60:02d},u{i},i{i % 1000},view,s{i}\n" for i in range(200_000)
    )
    big.write_text("ts,user_id,item_id,event_type,session_id\n" + rows)
    setup = f"mount -t tmpfs -o size=3m tmpfs {data}"
    first, full, stats = in_namespace(setup, [["ingest", str(small)], ["ingest", str(big)], ["stats"]], data)
    assert first.returncode == 0, first.stderr
    assert full.returncode == 2
    error = the_error(full)
    assert "is full" in error
    assert "free some space" in error
    assert stats.returncode == 0, stats.stderr
    assert '"events": 1' in stats.stdout
