"""The bias audit in a real browser: a product manager runs it on a sample and gets the exports; a viewer
has no way to it (core refuses the call as well: tests/integration/test_audit_on_demo.py)."""

import pytest

from tests.e2e.steps import go_to, settle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_product_manager_runs_the_audit(signed_in):
    page = signed_in("pam")
    go_to(page, "Audit")
    page.get_by_role("heading", name="Bias audit").wait_for()
    sample = page.get_by_label("Sample size")
    sample.fill("60")
    sample.press("Tab")
    page.get_by_role("button", name="Run the audit").click()
    settle(page, timeout_ms=300_000)
    page.get_by_role("button", name="Download CSV").wait_for(timeout=300_000)
    assert page.get_by_role("button", name="Download HTML report").count() == 1
    assert page.get_by_text("sample of 60").count() >= 1
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0


def test_a_viewer_has_no_audit(signed_in):
    page = signed_in("vic")
    assert page.get_by_role("link", name="Preview").count() == 1  # the page list is drawn
    assert page.get_by_role("link", name="Audit").count() == 0
    assert page.get_by_role("link", name="Publish").count() == 0
