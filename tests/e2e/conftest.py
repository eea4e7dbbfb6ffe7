"""A real app (streamlit run app.py) on a free localhost port, and Debian's chromium via Playwright."""

from pathlib import Path

import pytest

from tests.conftest import ACCOUNTS, copy_shop
from tests.e2e.app_server import running_app
from tests.e2e.steps import sign_in

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
