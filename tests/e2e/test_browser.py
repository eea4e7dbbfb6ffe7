"""The real app in a real browser (Debian's chromium via Playwright): what a merchandiser does."""

import re

import pytest

from tests.e2e.steps import go_to

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_overview_shows_the_shop_and_funnel(signed_in):
    page = signed_in("vic")
    page.get_by_text("Overview", exact=True).first.wait_for()
    values = page.locator('[data-testid="stMetricValue"]')
    values.first.wait_for()
    assert int(values.first.inner_text().replace(",", "")) > 1000
    page.locator(".js-plotly-plot").first.wait_for()


def test_upload_a_log_and_see_rejects(signed_in, tmp_path):
    log = tmp_path / "upload.csv"
    log.write_text(
        "ts,user_id,item_id,event_type\n2026-10-20 10:00:00,e2e-user,i00001,view\n"
        "2026-10-20 10:01:00,e2e-user,i00002,clik\n"
    )
    page = signed_in("ada")
    go_to(page, "Data")
    page.locator('input[type="file"]').set_input_files(str(log))
    page.get_by_role("button", name="Load", exact=True).click()
    page.get_by_text(re.compile(r"loaded 1, rejected 1")).wait_for(timeout=60_000)
    page.get_by_role("tab", name="Ingest history").click()
    page.get_by_text("Rejected rows of ingest").wait_for()


def test_preview_a_shopper(signed_in):
    page = signed_in("mia")
    go_to(page, "Preview")
    page.get_by_role("button", name="Random shopper").click()
    page.locator(".hs-card").first.wait_for(timeout=60_000)
    assert page.locator(".hs-card").count() >= 10
    page.get_by_text(re.compile(r"items scored on cpu in")).first.wait_for()
    first = page.locator("h3").filter(has_text="Shopper").inner_text()
    page.get_by_role("button", name="Random shopper").click()
    page.wait_for_function(
        "(prev) => [...document.querySelectorAll('h3')].some(h => h.innerText.startsWith('Shopper') && "
        "h.innerText !== prev)",
        arg=first,
        timeout=60_000,
    )
