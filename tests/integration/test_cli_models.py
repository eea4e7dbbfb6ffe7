"""Training and benchmarking from the shell: too little data ends in one sentence and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, data: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"HS_DB": str(data / "shop.duckdb"), "HS_DATA": str(data)}
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_training_on_one_shopper_with_three_events_says_why(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(
        "ts,user_id,item_id,event_type\n"
        "2024-05-01 10:00:00,u1,i1,view\n"
        "2024-05-01 10:01:00,u1,i2,view\n"
        "2024-05-01 10:02:00,u1,i3,purchase\n"
    )
    assert run_cli("ingest", str(log), data=tmp_path).returncode == 0
    train = run_cli("train", "--time-budget", "0.2", data=tmp_path)
    assert train.returncode == 2
    assert "Traceback" not in train.stderr
    assert "1 shopper(s) with 3 or more steps" in train.stderr
    assert "load more events" in train.stderr


def test_bench_on_a_one_user_file_says_why(tmp_path):
    seq = tmp_path / "one.txt"
    seq.write_text("u1 a b c\n")
    bench = run_cli("bench", "--data", str(seq), "--time-budget", "0.1", data=tmp_path)
    assert bench.returncode == 2
    assert "Traceback" not in bench.stderr
    assert "one.txt has 1 shopper(s)" in bench.stderr
