"""Steps a person takes in the browser, shared by the e2e tests."""


def submit_sign_in(page, url: str, name: str, password: str) -> None:
    """Open the app (a new browser session) and send the sign-in form."""
    page.goto(url)
    page.get_by_role("textbox", name="User name").fill(name)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in(page, url: str, name: str, password: str) -> None:
    submit_sign_in(page, url, name, password)
    page.get_by_text("Signed in as").wait_for()


def go_to(page, name: str) -> None:
    """Open a page from the sidebar (a reload would start a new, signed-out session)."""
    page.get_by_role("link", name=name, exact=True).first.click()
    page.wait_for_load_state("networkidle")


def settle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the app's script run has finished (Streamlit's running indicator is gone)."""
    page.wait_for_timeout(300)  # the indicator appears a moment after the action that started the run
    page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=timeout_ms)


def choose_last_option(page, scope) -> str:
    """Open the selectbox in ``scope``, pick its last option; returns the option's text."""
    for _ in range(3):  # a click that lands while the box re-renders opens nothing: try again
        scope.get_by_role("combobox").click()
        try:
            page.get_by_role("listbox").wait_for(timeout=5_000)
            break
        except Exception:
            settle(page)
    last = page.get_by_role("option").last
    text = last.inner_text()
    last.click()
    return text
