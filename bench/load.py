"""Browser load on the dashboard: N Playwright sessions in Debian's chromium, each signing in, then for
``--seconds`` previewing a random shopper and opening the explanation of a slot, over and over, reading
each page for ``--think`` seconds on average (uniform in [0.5, 1.5] × think, as the API bench's shoppers
wait between pages) before the next click. ``--think 0`` is a stress test: every session clicks the moment
the page is there, so the sessions queue on the two cores with their own five (or twenty) browsers.
Sessions start ``--spawn-rate`` per second (Locust's default ramp, 1/s), each for ``--seconds`` from the
level's start; ``--spawn-rate 0`` starts them all in the same instant.

    .venv/bin/python bench/load.py [--data DIR] [--sessions 1,5,20] [--seconds 60] [--think 2] [--spawn-rate 1] [--json]

The app runs as ``make run`` starts it (``streamlit run app.py``) on a copy of ``--data`` (default: the
app's ``data/``; build it with ``python -m core first-run``), so the bench's account and audit rows never
reach the real store. Each interaction is timed from the click to the thing a person waits for (the
preview's first product card; the explanation's "Slot N:" heading). Each session's first preview is reported
on its own (``first_preview``): it also loads the page and its chart library into a new browser. An error is a timeout, an exception
box or an error message on the page. Target (issue 13): 0 errors at 20 sessions and p95 preview ≤ 2 s at 5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.app_server import running_app  # noqa: E402 (after the path)

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-sync",
]
TIMEOUT_MS = 60_000
FAILED = '[data-testid="stException"], [data-testid="stAlertContentError"]'


def bench_account(data: Path) -> tuple[str, str]:
    """A merchandiser for the bench in the copied store, with a password of its own."""
    os.environ["HS_DATA"], os.environ["HS_DB"] = str(data), str(data / "shop.duckdb")
    from core.release import auth, users
    from core.release.roles import SYSTEM

    name, password = "loadbench", secrets.token_urlsafe(16)
    session = auth.sign_in(name, users.create_user(SYSTEM, name, "merchandiser"))
    auth.change_password(session.account, password, keep_token=session.token)
    return name, password


async def timed(samples: list[float], errors: list[str], page, what: str, action, done) -> None:
    started = time.perf_counter()
    try:
        await action()
        await done.wait_for(timeout=TIMEOUT_MS)
        samples.append(time.perf_counter() - started)
        if await page.locator(FAILED).count():
            errors.append(f"{what}: {await page.locator(FAILED).first.inner_text()}"[:200])
    except Exception as exc:  # noqa: BLE001 (a timeout or a crash is this bench's error count)
        errors.append(f"{what}: {type(exc).__name__}: {str(exc)[:150]}")


async def one_session(
    browser, url, account, deadline, out, think: float = 0.0, start_after: float = 0.0
) -> None:
    await asyncio.sleep(start_after)  # people sign in one after another, not in the same instant
    pause = lambda: asyncio.sleep(think * (0.5 + random.random()))  # noqa: E731 (a person reads the page)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(url)
        await page.get_by_role("textbox", name="User name").fill(account[0])
        await page.get_by_role("textbox", name="Password").fill(account[1])
    except Exception as exc:  # noqa: BLE001 (a session that cannot even open the app is an error, not a crash)
        out["errors"].append(f"open the app: {type(exc).__name__}: {str(exc)[:150]}")
        await context.close()
        return
    try:
        await timed(out["sign_in"], out["errors"], page, "sign in",
                    page.get_by_role("button", name="Sign in").click, page.get_by_text("Signed in as"))  # fmt: skip
        first_done = False
        while True:  # at least once: the warm-up is one round
            await page.get_by_role("link", name="Preview", exact=True).first.click()
            shopper = page.get_by_role("button", name="Random shopper")
            await shopper.wait_for(timeout=TIMEOUT_MS)
            cards = page.locator(".hs-card")
            samples = out["preview"] if first_done else out["first_preview"]
            await timed(samples, out["errors"], page, "preview", shopper.click, cards.first)
            first_done = True
            await pause()
            await page.get_by_role("link", name="Explain", exact=True).first.click()
            heading = page.get_by_role("heading", name="Slot 1:")
            await timed(out["explain"], out["errors"], page, "explain", lambda: asyncio.sleep(0), heading)
            await pause()
            if time.perf_counter() >= deadline:
                break
    except Exception as exc:  # noqa: BLE001 (the page never came: this session's error, the others go on)
        out["errors"].append(f"navigate: {type(exc).__name__}: {str(exc)[:150]}")
    finally:
        await context.close()


async def run_level(
    url: str, account, sessions: int, seconds: float, think: float = 0.0, spawn_rate: float = 0.0
) -> dict:
    from playwright.async_api import async_playwright

    out = {"sign_in": [], "first_preview": [], "preview": [], "explain": [], "errors": []}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(
                one_session(
                    browser, url, account, deadline, out, think, i / spawn_rate if spawn_rate else 0.0
                )
                for i in range(sessions)
            )
        )
        await browser.close()
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(sessions: int, out: dict) -> dict:
    row = {"sessions": sessions, "errors": len(out["errors"]), "first_errors": out["errors"][:3]}
    for what in ("sign_in", "first_preview", "preview", "explain"):
        values = out[what]
        row[what] = {
            "n": len(values),
            "p50_s": statistics.median(values) if values else None,
            "p95_s": percentile(values, 0.95),
        }
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data"))
    ap.add_argument("--sessions", default="1,5,20")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--think", type=float, default=2.0, help="mean seconds a person reads a page (0: stress)")
    ap.add_argument(
        "--spawn-rate", type=float, default=1.0, help="sessions started per second (0: all at once)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    source = Path(args.data).resolve()
    if not (source / "shop.duckdb").exists():
        print(f"{source}: no shop.duckdb — run `python -m core first-run` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hs-load-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(source, data, ignore=shutil.ignore_patterns("audit", "uploads", "jobs"))
        account = bench_account(data)
        load = os.getloadavg()
        rows = []
        with running_app(data) as url:
            warm = summary(1, asyncio.run(run_level(url, account, 1, 0)))  # the first run loads the shop
            if not args.json:
                print("warm-up (not counted):", json.dumps(warm))
            for n in [int(x) for x in args.sessions.split(",")]:
                level = run_level(url, account, n, args.seconds, args.think, args.spawn_rate)
                settings = {"think_s": args.think, "spawn_per_s": args.spawn_rate}
                rows.append({**summary(n, asyncio.run(level)), **settings})
                if not args.json:
                    print(json.dumps(rows[-1]))
    report = {"load_before": [round(x, 2) for x in load], "load_after": [round(x, 2) for x in os.getloadavg()],
              "seconds": args.seconds, "levels": rows}  # fmt: skip
    print(
        json.dumps(report, indent=2)
        if args.json
        else f"load average {report['load_before']} → {report['load_after']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
