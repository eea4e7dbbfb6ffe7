"""One-click publish in a real browser: the first-run admin, a merchandiser who pins and publishes, a
viewer who cannot, and a rollback. Core is asked afterwards what really went live."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, using_data
from tests.e2e.app_server import free_port
from tests.e2e.steps import choose_last_option, go_to, settle, submit_sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def first_run_password(data, url: str) -> str:
    """Run `python -m core first-run` as `make run` does and read the password it prints."""
    env = {**os.environ, "HS_DATA": str(data), "HS_DB": str(data / "shop.duckdb")}
    out = subprocess.run(
        [sys.executable, "-m", "core", "first-run", "--url", url],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return re.search(r"one-time password\s+(\S+)", out.stdout).group(1)


def first_sign_in(page, url: str, name: str, one_time: str, password: str) -> None:
    """Sign in with a one-time password and choose your own, as the app requires."""
    submit_sign_in(page, url, name, one_time)
    page.get_by_text("choose your own to continue").wait_for()
    page.get_by_role("textbox", name="New password (at least 10 characters)").fill(password)
    page.get_by_role("textbox", name="New password again").fill(password)
    page.get_by_role("button", name="Save password").click()
    page.get_by_text("Signed in as").wait_for()


def create_account(page, name: str, role: str) -> str:
    """The admin creates an account on the Users page; returns the one-time password it shows."""
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_test_id("stForm").get_by_test_id("stSelectbox").click()
    page.get_by_role("option", name=role, exact=True).click()
    page.get_by_role("button", name="Create account").click()
    page.get_by_text(f"One-time password for {name}").wait_for()
    return page.get_by_test_id("stCode").inner_text().strip()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()


def pin_an_item_to_slot_1(page) -> str:
    """Pin an item to slot 1 and save the rule set, with today's pages (the Preview's quick rule, the Rules
    page's save): the one step to adapt when the Rules page changes. Returns the pinned item id."""
    go_to(page, "Preview")
    # the app's first preview loads the model and the shop's snapshot: slow on a busy machine
    page.get_by_role("button", name="Random shopper").click(timeout=180_000)
    page.locator(".hs-card").first.wait_for(timeout=180_000)
    settle(page)
    quick = page.get_by_test_id("stExpander").filter(has_text="Add a rule from this homepage")
    quick.get_by_text("Add a rule from this homepage").click()
    # the item the model put last: slot 1 is news for it
    item = choose_last_option(page, quick).split(" — ")[0].strip()
    # the choice reruns the page: a click during that rerun can land on a box being redrawn, so wait for the
    # run to end and for the box to show the item before pinning it
    settle(page)
    expect(quick.get_by_role("combobox")).to_have_value(re.compile(rf"^{item} "))
    quick.get_by_role("button", name="Pin here").click()
    # the draft has the pin before we leave the page; the pin's rerun ranks the homepage again under the new
    # rule set (no cache hit), as slow on a busy machine as the first preview
    page.locator('[data-testid="stAlertContentSuccess"]').filter(
        has_text=f"Pinned {item} to slot 1"
    ).wait_for(timeout=180_000)
    go_to(page, "Rules")
    page.get_by_role("textbox", name="Note for this version").fill(f"pin {item} to slot 1")
    page.get_by_role("button", name="Save as new version").click()
    page.get_by_text(re.compile(r"Saved as version \d+")).wait_for()
    return item


def live_rules(data) -> tuple[int, list[dict]]:
    """(live release id, its artifact's rules), read as the storefront will: from the artifact."""
    with using_data(data):
        from core.release.artifact import open_live

        entry, artifact = open_live()
        return entry.release_id, artifact.rules()["rules"]


@pytest.fixture
def storefront_api(own_app):
    """`python -m core serve` (what `make serve` starts) on a free port over the test's data folder: it
    answers 503 until release 1 exists, then follows the live pointer by itself. Yields its URL."""
    _, shop = own_app
    port = free_port()
    env = {**os.environ, "HS_DATA": str(shop), "HS_DB": str(shop / "shop.duckdb"), "HS_SERVE_POLL": "0.5"}
    with open(shop.parent / f"serve-{port}.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core", "serve", "--port", str(port), "--workers", "1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def api_get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def api_homepage_of(api: str, release_id: int, data) -> list[tuple[str, list[str]]]:
    """The For-you slots (item id, reason codes) a running `core serve` answers for a shopper of the shop, once it serves
    ``release_id`` (it switches within about a second of the pointer changing)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            if api_get(f"{api}/v1/release")["release_id"] == release_id:
                break
        except OSError:  # not listening yet, or 503 before anything it can serve
            pass
        assert time.monotonic() < deadline, f"the storefront API never served release {release_id}"
        time.sleep(0.5)
    with using_data(data):
        from core.release.artifact import open_live

        shopper = open_live()[1].table("users")["user_id"][0]
    page = api_get(f"{api}/v1/homepage/{shopper}?row_k=0")
    assert page["release_id"] == release_id
    return [(s["item_id"], [r["code"] for r in s["reasons"]]) for s in page["slots"] if s["row"] == "for_you"]


def test_admin_merchandiser_viewer_publish_and_rollback(page, own_app, storefront_api):
    app_url, shop = own_app
    one_time = first_run_password(shop, app_url)
    first_sign_in(page, app_url, "admin", one_time, "admin-chose-this-1")
    go_to(page, "Users")
    merchandiser = create_account(page, "mel", "merchandiser")
    viewer = create_account(page, "val", "viewer")
    sign_out(page)

    before, _ = live_rules(shop)
    first_sign_in(page, app_url, "mel", merchandiser, "mel-chose-this-1")
    item = pin_an_item_to_slot_1(page)
    go_to(page, "Publish")
    page.get_by_text(re.compile(r"Draft \(rule set v[1-9]")).wait_for()  # the saved version is the draft
    page.get_by_role("button", name="Publish…").click()
    page.get_by_role("textbox", name="Note (required): why this goes live").fill(f"e2e: {item} on slot 1")
    page.get_by_role("button", name="Publish now").click()
    page.get_by_text(re.compile(r"Release \d+ is live\.")).wait_for(timeout=120_000)
    published, rules = live_rules(shop)
    assert published > before
    assert {"kind": "pin", "item": item, "slot": 1} in [
        {"kind": r["kind"], "item": r["params"].get("item_id"), "slot": r["params"].get("slot")}
        for r in rules
    ]
    page.get_by_text(f"Live now: release {published}").wait_for()
    slot_1 = api_homepage_of(storefront_api, published, shop)[0]
    assert slot_1[0] == item
    assert "pin.pinned" in slot_1[1]
    sign_out(page)

    first_sign_in(page, app_url, "val", viewer, "val-chose-this-1")
    assert page.get_by_role("link", name="Publish").count() == 0
    assert page.get_by_role("button", name="Publish…").count() == 0
    sign_out(page)

    submit_sign_in(page, app_url, "mel", "mel-chose-this-1")
    go_to(page, "Publish")
    page.locator(f".st-key-rollback-{before}").get_by_role("button").click()
    page.get_by_role("button", name="Roll back now").click()
    page.get_by_text(f"release {before}'s artifact again").wait_for(timeout=60_000)
    rolled_back, rules = live_rules(shop)
    assert rolled_back > published
    assert item not in [r["params"].get("item_id") for r in rules]
    after = api_homepage_of(storefront_api, rolled_back, shop)
    assert after[0][0] != item  # the model may still show the item lower down, but never pinned
    assert not any("pin.pinned" in codes for _, codes in after)
