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
        "admin@acme.test",
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
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{server.server_port}/parley-events"
    server.shutdown()


@pytest.fixture(scope="session")
def e2e_data(django_db_setup, django_db_blocker, channel_receiver):
    """Committed: backup codes for E2E_USERS; inboxes "E2E Support" (agent) and "E2E Sales" (agent2)."""
    from django.contrib.auth import get_user_model
    from django_tenants.utils import schema_context, tenant_context

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
            # A conversation waiting in "E2E Support" (the phone-sized inbox test).
            from django.db import connection

            from conversations import services as conversation_services
            from tenants.models import Tenant

            with tenant_context(Tenant.objects.get(schema_name=connection.schema_name)):
                support_box = access.inbox_list_for_user(admin).get(name="E2E Support")
                # Its own channel, replying to a closed port: nothing reaches the receiver above.
                support_box.channel = Channel.objects.create(
                    name="E2E Support channel",
                    public_id="e2e-support-channel-0001",
                    outbound_url="http://127.0.0.1:9/closed",
                    signing_credential=connector_services.credential_set(
                        name="e2e-support-secret",
                        kind="webhook_secret",
                        connector="api-channel",
                        secret=CHANNEL_SECRET + "-support",
                    ),
                )
                support_box.save()
                conversation_services.message_receive(
                    inbox=support_box,
                    contact_external_id="e2e-phone-1",
                    contact_name="Petra Phone",
                    body="Can I change the delivery address of my order?",
                    external_id="e2e-phone-m-1",
                )
                # A WhatsApp channel on its own Meta app (the channels page's Meta row).
                from connectors.channels import channel_create

                channel_create(
                    by=admin,
                    name="E2E WhatsApp",
                    kind="whatsapp",
                    settings={"phone_number_id": "106540352242922000"},
                    secrets_given={
                        "app_secret": "e2e-app-secret",
                        "verify_token": "e2e-verify-token",
                        "access_token": "EAAG-e2e-access-token",
                    },
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


AXE_JS = support.BASE_DIR / "node_modules" / "axe-core" / "axe.min.js"

# Recorded before any page script runs: a CSP refusal fires this event (and a
# console message, but the event names the directive and the blocked thing).
_CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  (window.__cspViolations = window.__cspViolations || []).push(
    `${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`
  );
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def page(browser):
    """A fresh browser context; the test fails on any console error or warning,
    CSP violation or failed asset on any page it visited."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(_CSP_LISTENER)
    page = context.new_page()
    # Script errors, CSP refusals and failed assets (a 4xx document is a page
    # answering as designed; a 4xx stylesheet or script is a bug).
    page.console_problems = []
    page.on(
        "console",
        lambda m: (
            m.type in ("error", "warning")
            and not m.text.startswith("Failed to load resource")
            and page.console_problems.append(f"{page.url}: {m.text}")
        ),
    )
    page.on("pageerror", lambda e: page.console_problems.append(f"{page.url}: {e}"))
    page.on(
        "response",
        lambda r: (
            r.request.resource_type != "document"
            and r.status >= 400
            and page.console_problems.append(f"{r.status} {r.url}")
        ),
    )
    yield page
    problems = list(page.console_problems)
    context.close()
    if problems:
        pytest.fail("console errors or CSP violations:\n" + "\n".join(problems), pytrace=False)


def axe_problems(page, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Serious and critical axe-core violations of the page as it is now.

    axe is evaluated through the DevTools protocol, which the page's CSP does
    not govern; nothing is added to the page's own scripts.
    """
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_JS.read_text())
    result = page.evaluate(
        """async (exclude) => {
          const context = exclude.length ? {exclude: exclude.map((sel) => [sel])} : document;
          const r = await axe.run(context, {resultTypes: ["violations"]});
          if (!r.passes.length && !r.incomplete.length && !r.inapplicable.length)
            return ["axe ran no rule at all"];
          return r.violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => `${v.id} (${v.impact}): ${v.help} — ` +
                 v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | "));
        }""",
        list(exclude),
    )
    return [f"{page.url}: {line}" for line in result]


def sideways_scroll(page) -> str | None:
    """None when the page fits its viewport's width and no visible control sits
    outside it (e.g. in a table scrolled sideways inside a card); else a description."""
    found = page.evaluate(
        """() => {
          const inner = window.innerWidth;
          const scroll = document.documentElement.scrollWidth;
          const outside = Array.from(document.querySelectorAll("button, a[href], input, select, textarea"))
            .filter((el) => el.offsetParent !== null && el.getClientRects().length)
            .filter((el) => el.getBoundingClientRect().right > inner + 1)
            .map((el) => (el.textContent || el.getAttribute("aria-label") || el.name || el.tagName).trim().slice(0, 30));
          return {inner, scroll, outside};
        }"""
    )
    problems = []
    if found["scroll"] > found["inner"]:
        problems.append(f"scrollWidth {found['scroll']} > innerWidth {found['inner']}")
    if found["outside"]:
        problems.append(f"controls beyond the right edge: {found['outside'][:5]}")
    return f"{page.url}: {'; '.join(problems)}" if problems else None


def settings_link(page, name: str):
    """A link of the "Settings" menu, with the menu opened like a person would."""
    menu = page.locator("#settings-menu")
    if menu.get_attribute("open") is None:
        menu.locator("summary").click()
    return menu.get_by_role("link", name=name, exact=True)
