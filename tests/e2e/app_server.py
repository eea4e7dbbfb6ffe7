"""``running_app(data)``: ``streamlit run app.py`` as ``make run`` starts it, on a free localhost port over a data
folder, for the browser tests and ``bench/load.py`` (no pytest here, so the bench can import it)."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(data: Path):
    """``streamlit run app.py`` on a free localhost port over a data folder; yields its URL."""
    port = free_port()
    env = {**os.environ, "HS_DATA": str(data), "HS_DB": str(data / "shop.duckdb")}
    log_path = data.parent / f"streamlit-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited: {log_path.read_text()}") from None
                if time.time() > deadline:
                    raise RuntimeError("streamlit did not answer within 60 s") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
