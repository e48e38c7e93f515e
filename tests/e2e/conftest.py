"""A live server process and headless Chromium for browser tests."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import support

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def live_url(django_db_setup):
    """Base URL template of a real server (``runserver``) on the test database."""
    port = support.free_port()
    log = Path(support.devstack.state_dir()) / "test-live-server.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=support.BASE_DIR,
        env=support.subprocess_env(PARLEY_PUBLIC_PORT=str(port)),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://localhost:{port}/login/", timeout=1)  # noqa: S310 - loopback
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(
                    f"live server did not start:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.2)
    yield lambda host="localhost": f"http://{host}:{port}"
    proc.terminate()
    proc.wait(10)


# Package scope: Playwright's sync API runs an event loop in this thread while it
# is open, and Django refuses synchronous database calls from tests after it.
@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: install Debian's chromium package (`make sysdeps` does).")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    # Script errors, CSP refusals and failed assets (a 4xx document is a page
    # answering as designed; a 4xx stylesheet or script is a bug).
    page.console_problems = []
    page.on(
        "console",
        lambda m: (
            m.type in ("error", "warning")
            and not m.text.startswith("Failed to load resource")
            and page.console_problems.append(m.text)
        ),
    )
    page.on(
        "response",
        lambda r: (
            r.request.resource_type != "document"
            and r.status >= 400
            and page.console_problems.append(f"{r.status} {r.url}")
        ),
    )
    yield page
    context.close()
