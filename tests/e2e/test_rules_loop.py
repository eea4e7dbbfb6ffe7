"""The merchandiser's loop on the Rules page, in a real browser, through the forms: pin the promoted item to
slot 1, block an item, diversity, fairness, measure impact, save, reload, history, restore. And each bug of
issue 11 on the way: the table applied with blank times (NaT), blank cells never "nan", buttons kept after a
validation error, a blocked item gone from search and similar items, Explain's slot input, an unknown
shopper on Explain, and a pinned slot's sentence.

The app runs on its own copy of the demo shop: this test saves rule-set versions, which other tests must
not see."""

import os
import re
import shutil

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import ACCOUNTS
from tests.e2e.app_server import running_app
from tests.e2e.steps import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
LONG = 90_000


@pytest.fixture(scope="module")
def shop(demo_shop, tmp_path_factory):
    """A copy of the demo shop, and what the test expects of it, read before the app holds the database:
    the promoted item the form offers first, one of its similar items (to block), and a search that finds
    that item when no rule blocks it."""
    data = tmp_path_factory.mktemp("merchandiser") / "data"
    shutil.copytree(demo_shop, data, ignore=shutil.ignore_patterns("*.wal", "*.log"))
    old = {k: os.environ.get(k) for k in ("HS_DATA", "HS_DB")}
    os.environ["HS_DATA"], os.environ["HS_DB"] = str(data), str(data / "shop.duckdb")
    try:
        from core.ranking import choices, rows
        from core.ranking.rules import RuleSet

        pinned = choices.promotions()[0].item_ids[0]
        blocked = rows.similar_items(pinned, rule_set=RuleSet()).items.row(0, named=True)
        for query in blocked["title"].split():  # a word of its title that finds other items too
            found = rows.personalized_search("any", query, rule_set=RuleSet()).items["item_id"].to_list()
            if blocked["item_id"] in found and len(found) > 1:
                break
        else:
            raise AssertionError(f"no word of {blocked['title']!r} finds it among others")
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return {"data": data, "pinned": pinned, "blocked": blocked["item_id"], "query": query}


@pytest.fixture(scope="module")
def shop_url(shop):
    with running_app(shop["data"]) as url:
        yield url


@pytest.fixture(scope="module")
def tab(browser, shop_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    pg = context.new_page()
    pg.set_default_timeout(LONG)
    sign_in(pg, shop_url, "mia", ACCOUNTS["mia"][1])  # a merchandiser
    pg.get_by_role("link", name="Rules").first.click()
    pg.get_by_role("heading", name="Rules").first.wait_for()
    yield pg
    context.close()


def settle(page) -> None:
    """Wait until the app finished its rerun."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=LONG)


def pick(page, box, text: str) -> None:
    """Type ``text`` into a select box's field and click the option it leaves (a rerun can replace the box
    while its list opens: then try again)."""
    for _ in range(3):
        field = box.locator("input").first
        field.click()
        field.fill(text)  # the list filters as one types: the option is then in view
        option = page.get_by_role("option").filter(has_text=text).first
        try:
            option.wait_for(timeout=20_000)
            option.click()
            settle(page)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            settle(page)
    raise AssertionError(f"no option {text!r} in {box.inner_text()!r}")


def choose(page, label: str, option: str, shows: str | None = None) -> None:
    """Pick ``option`` (a part of its text) in the selectbox labelled ``label``; ``shows``: a label the page
    then has (the rerun is over when it is there)."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text(label, exact=True)).first
    pick(page, box, option)
    if shows:
        page.get_by_text(shows, exact=True).first.wait_for()


def selected(page, label: str) -> str:
    """The shown value of the selectbox labelled ``label``."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text(label, exact=True)).first
    field = box.locator("input")
    return field.first.input_value() if field.count() else box.inner_text()


def type_into(page, label: str, text: str, shows: re.Pattern | None = None) -> None:
    """Type ``text`` into the field labelled ``label``; ``shows``: text the page then has. A rerun that was
    still running can swallow the keystrokes: then type again."""
    for _ in range(3):
        settle(page)
        field = page.get_by_label(label, exact=True).first
        field.fill(text)
        field.press("Enter")
        settle(page)
        if shows is None:
            return
        try:
            page.get_by_text(shows).first.wait_for(timeout=30_000)
            return
        except PlaywrightTimeout:
            field.fill("")
            field.press("Enter")
    raise AssertionError(f"typing {text!r} into {label!r} never showed {shows.pattern!r}")


def click(page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).first.click()
    settle(page)


def success(page, pattern: str) -> str:
    """The success message matching ``pattern`` (failing with the page's error messages, if any, instead)."""
    alert = page.locator('[data-testid="stAlertContentSuccess"]').filter(has_text=re.compile(pattern)).first
    try:
        alert.wait_for()
    except PlaywrightTimeout:
        errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        raise AssertionError(f"no message {pattern!r}; errors on the page: {errors}") from None
    return alert.inner_text()


def test_the_merchandiser_loop(tab, shop):
    page = tab
    # a validation error (a pin without a slot) keeps Save, Discard and Measure impact on the page
    choose(page, "Kind", "Pin an item to a slot", shows="Slot")
    click(page, "Apply to draft")
    page.locator('[data-testid="stAlertContentError"]').filter(has_text="no slot").first.wait_for()
    for name in ("Save as new version", "Discard draft", "Measure impact"):
        assert page.get_by_role("button", name=name, exact=True).count() == 1, name

    # pin the promoted item to slot 1, picked by its promotion
    page.get_by_text("promotion", exact=True).first.click()
    settle(page)
    page.get_by_text("Promotion", exact=True).first.wait_for()
    pinned_label = selected(page, "Item")
    pinned = re.search(r"(i\d+) —", pinned_label).group(1)
    assert "★ promoted" in pinned_label
    assert pinned == shop["pinned"]
    type_into(page, "Slot", "1")
    click(page, "Apply to draft")
    assert f"pin item {pinned} to slot 1" in success(page, "Added pin-1")

    # block an item, found by its id
    blocked = shop["blocked"]
    choose(page, "Kind", "Block items", shows="Items to block")
    type_into(page, "Find items by title or id", blocked)
    items = (
        page.locator('[data-testid="stMultiSelect"]').filter(has=page.get_by_text("Items", exact=True)).first
    )
    pick(page, items, blocked)
    page.keyboard.press("Escape")
    settle(page)
    click(page, "Apply to draft")
    assert blocked in success(page, "Added block-1")

    # diversity with every field blank: the kind's defaults
    choose(page, "Kind", "Diversify the list", shows="Relevance weight λ")
    click(page, "Apply to draft")
    assert "MMR, λ 0.7" in success(page, "Added diversity-1")

    # a fair share for small sellers
    choose(page, "Kind", "A fair share for a group", shows="Share p")
    tiers = page.locator('[data-testid="stMultiSelect"]').filter(
        has=page.get_by_text("Seller tiers", exact=True)
    )
    pick(page, tiers.first, "small")
    page.keyboard.press("Escape")
    settle(page)
    click(page, "Apply to draft")
    assert "small sellers" in success(page, "Added fairness-1")
    page.get_by_text("The draft differs from saved version 0: 4 added").wait_for()

    # impact: named metrics with deltas, and what "protected" means under this fairness rule
    click(page, "Measure impact")
    page.get_by_text(
        re.compile(r"Protected: items from small sellers — the protected group of fairness rule fairness-1")
    ).wait_for()
    page.locator('[data-testid="stMetricLabel"]').filter(has_text="Score lost to rules").wait_for()
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    assert {"Intra-list diversity", "Categories covered", "Protected share", "Calibration KL"} <= set(labels)
    assert page.locator('[data-testid="stMetricDelta"]').count() >= 4

    # save, reload: the rules come back from the store, and nothing is left to save
    type_into(page, "Note for this version", "launch week")
    click(page, "Save as new version")
    success(page, "Saved as version 1")
    page.reload()  # a new browser session: signed out, the draft gone, the saved version stays
    sign_in(page, page.url.split("/rules")[0], "mia", ACCOUNTS["mia"][1])
    page.get_by_role("link", name="Rules").first.click()
    page.get_by_role("heading", name="Rules").first.wait_for()
    page.get_by_text("the same as saved version 1").wait_for()
    assert page.get_by_text(re.compile(r"pin-1 — pin item")).count() == 1
    click(page, "Save as new version")
    page.locator('[data-testid="stAlertContentError"]').filter(has_text="nothing to save").first.wait_for()

    # history: change the draft, save version 2, restore version 1 as the draft
    page.get_by_role("button", name="Remove", exact=True).nth(2).click()  # diversity-1
    success(page, "Removed diversity-1")
    click(page, "Save as new version")
    success(page, "Saved as version 2")
    choose(page, "Version", "1")
    page.get_by_text(re.compile(r"The draft against version 1: 1 removed")).wait_for()
    click(page, "Restore version 1 as draft")
    success(page, "Version 1 restored as the draft")
    page.get_by_text("The draft differs from saved version 2: 1 added").wait_for()

    check_the_surfaces(page, shop)


def check_the_surfaces(page, shop) -> None:
    pinned, blocked = shop["pinned"], shop["blocked"]
    # the preview's "Block item" then the table applied with its blank (NaT) times: no crash, no "nan"
    page.get_by_role("link", name="Preview").first.click()
    page.get_by_role("button", name="Random shopper").click()
    page.locator(".hs-card").first.wait_for(timeout=LONG)
    assert page.locator(".hs-badge", has_text="pinned").count() >= 1
    page.get_by_text("Add a rule from this homepage (to the draft)").click()
    click(page, "Block item")
    # the flash comes after the homepage is ranked again under the new rule set: slow on a busy machine
    page.get_by_text(re.compile(r"Blocked i\d+ in the draft")).wait_for(timeout=LONG)
    # a blocked item is in no search result and no similar-items row (without the block, both show it)
    type_into(page, "Search titles, personalized for this shopper", shop["query"], re.compile("Search: “"))
    type_into(page, "Similar items for item id (a product page)", pinned, re.compile("Similar to "))
    assert page.locator(".hs-card").count() > 30
    assert page.locator(f'.hs-card[data-item="{blocked}"]').count() == 0

    page.get_by_role("link", name="Rules").first.click()
    page.get_by_text("Advanced: the draft as a table").click()
    click(page, "Apply the table to the draft")
    success(page, "Applied the table to the draft")
    body = page.locator("[data-testid='stMain']").first.inner_text()
    assert re.findall(r"\bnan\b", body) == []
    for name in ("Save as new version", "Discard draft"):
        assert page.get_by_role("button", name=name, exact=True).count() == 1

    # Explain: an unknown shopper, the slot input taking every change, a pinned slot's sentence
    page.get_by_role("link", name="Explain").first.click()
    shopper = page.get_by_label("Shopper", exact=True)
    known = shopper.input_value()
    type_into(page, "Shopper", "no-such-shopper-zz")
    page.locator('[data-testid="stAlertContentError"]').filter(has_text="no such shopper").first.wait_for()
    type_into(page, "Shopper", known)
    for slot in (5, 2, 7, 3):
        type_into(page, "Slot", str(slot))
        page.get_by_role("heading", name=re.compile(rf"^Slot {slot}:")).wait_for()
    type_into(page, "Slot", "1")
    page.get_by_role("heading", name=re.compile(r"^Slot 1:")).wait_for()
    sentence = page.locator("strong").filter(has_text=re.compile("^(Shown|Recommended)")).first.inner_text()
    assert sentence.startswith(
        "Shown in slot 1 because it was pinned to slot 1 by a merchandiser (rule pin-1)"
    )
