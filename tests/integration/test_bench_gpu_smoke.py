"""bench/gpu.py's code path (sampled-softmax training step and batched top-100 inference, LSTM and transformer)
runs on the CPU at a tiny size; on a machine with CUDA the same script measures the GPU."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_bench_cpu_smoke_run():
    done = subprocess.run(
        [sys.executable, "bench/gpu.py", "--cpu-smoke"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    for arch in ("lstm", "transformer"):
        assert f"[{arch}]" in done.stdout
    assert done.stdout.count("train: steps/s") == 2
    assert done.stdout.count("infer: users/s") == 2
