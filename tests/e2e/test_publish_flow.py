"""One-click publish in a real browser: the first-run admin, a merchandiser who pins and publishes, a
viewer who cannot, and a rollback. Core is asked afterwards what really went live."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, using_data
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
    quick.get_by_role("button", name="Pin here").click()
    # the draft has the pin before we leave the page
    page.locator('[data-testid="stAlertContentSuccess"]').filter(
        has_text=f"Pinned {item} to slot 1"
    ).wait_for()
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


def test_admin_merchandiser_viewer_publish_and_rollback(page, own_app):
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
