"""A real app (streamlit run app.py) on a free localhost port, and Debian's chromium via Playwright."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ACCOUNTS, copy_shop
from tests.e2e.steps import sign_in

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(data: Path):
    """``streamlit run app.py`` on a free localhost port over a data folder; yields its URL."""
    port = _free_port()
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


@pytest.fixture(scope="session")
def app_url(demo_shop):
    with running_app(demo_shop) as url:
        yield url


@pytest.fixture
def own_app(demo_shop, tmp_path):
    """A copy of the demo shop with no admin and no release yet, and an app of its own: (url, data folder)
    (for a test that publishes, so the shared shop's rules and releases stay as other tests expect)."""
    data = copy_shop(demo_shop, tmp_path / "data")
    with running_app(data) as url:
        yield url, data


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        "Debian's chromium is missing: apt-get install -y chromium (make test does)"
    )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


@pytest.fixture
def signed_in(page, app_url):
    """Sign the browser in as an account of ``ACCOUNTS``: ``signed_in("ada")`` returns the page."""

    def sign_in_as(name: str):
        sign_in(page, app_url, name, ACCOUNTS[name][1])
        return page

    return sign_in_as
