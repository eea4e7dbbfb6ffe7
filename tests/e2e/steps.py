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
