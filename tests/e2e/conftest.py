"""A live server process and headless Chromium for browser tests."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


# Users the browser tests sign in as. Each gets backup codes committed before
# the browser starts, so a sign-in completes MFA like a person with a code
# would (a TOTP code may be used once per 30 s, a backup code once).
E2E_USERS = {
    "acme": [
        "owner@acme.test",
        "agent@acme.test",
        "agent2@acme.test",
        "analyst@acme.test",
        "marketer@acme.test",
        "integrator@acme.test",
    ],
    None: ["operator"],
}
NEW_ADMIN = "first.admin@acme.test"
_BACKUP_CODES: dict[tuple[str | None, str], list[str]] = {}


# The API channel of the inbox "E2E Live": a known signing secret, replies
# POSTed to a receiver in this process (CHANNEL_RECEIVED collects them).
CHANNEL_SECRET = "e2e-channel-signing-secret-0123456789abcdef"
CHANNEL_PUBLIC_ID = "e2e-live-channel-0001"
CHANNEL_RECEIVED: list[dict] = []


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        CHANNEL_RECEIVED.append(
            {"raw": raw, "signature": self.headers.get("X-Parley-Signature", "")}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def channel_receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/parley-events"
    server.shutdown()


@pytest.fixture(scope="session")
def e2e_data(django_db_setup, django_db_blocker, channel_receiver):
    """Committed: backup codes for E2E_USERS; inboxes "E2E Support" (agent) and "E2E Sales" (agent2)."""
    from django.contrib.auth import get_user_model
    from django_tenants.utils import schema_context

    from accounts import mfa
    from conversations import access

    User = get_user_model()
    with django_db_blocker.unblock():
        for slug, usernames in E2E_USERS.items():
            with schema_context("public" if slug is None else f"t_{slug}"):
                for username in usernames:
                    user = User.objects.get(username=username)
                    _BACKUP_CODES[(slug, username)] = mfa.backup_codes_create(user, 20, name="e2e")
        with schema_context("t_acme"):
            admin = User.objects.get(email="admin@acme.test")
            for name, member in (
                ("E2E Support", "agent@acme.test"),
                ("E2E Sales", "agent2@acme.test"),
            ):
                box = access.inbox_create(by=admin, name=name)
                access.inbox_member_add(by=admin, inbox=box, user=User.objects.get(email=member))
            # The live inbox: an API channel bound to it, agent@acme.test its only member.
            from connectors import services as connector_services
            from connectors.models import Channel

            credential = connector_services.credential_set(
                name="e2e-live-secret",
                kind="webhook_secret",
                connector="api-channel",
                secret=CHANNEL_SECRET,
            )
            channel = Channel.objects.create(
                name="E2E Live channel",
                public_id=CHANNEL_PUBLIC_ID,
                outbound_url=channel_receiver,
                signing_credential=credential,
            )
            live = access.inbox_create(by=admin, name="E2E Live")
            live.channel = channel
            live.save()
            access.inbox_member_add(
                by=admin, inbox=live, user=User.objects.get(email="agent@acme.test")
            )
            # An admin who has never signed in (first-login enrolment).
            User.objects.create_user(
                username=NEW_ADMIN, email=NEW_ADMIN, password=support.PASSWORD, role="admin"
            )
    return _BACKUP_CODES


def sign_in(page, base: str, username: str, *, tenant: str | None = "acme") -> None:
    """Password, then a backup code on the verification page."""
    page.goto(base + "/login/")
    page.get_by_label("Username" if tenant is None else "E-mail or username").fill(username)
    page.get_by_label("Password").fill(support.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/mfa/verify/**")
    page.get_by_label("Code").fill(_BACKUP_CODES[(tenant, username)].pop())
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()


def _start_server(**extra_env: str):
    port = support.free_port()
    log = Path(support.devstack.state_dir()) / f"test-live-server-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=support.BASE_DIR,
        env=support.subprocess_env(PARLEY_PUBLIC_PORT=str(port), **extra_env),
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
    return proc, port


@pytest.fixture(scope="session")
def live_url(e2e_data):
    """Base URL template of a real server (``runserver``) on the test database."""
    proc, port = _start_server()
    yield lambda host="localhost": f"http://{host}:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def short_idle_url(e2e_data):
    """A second server whose sessions end after 3 idle seconds."""
    proc, port = _start_server(PARLEY_SESSION_IDLE_SECONDS="3")
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
