"""Identity in a real browser: first-login TOTP enrolment, a refused code, an
agent's inbox list, and the idle timeout."""

from __future__ import annotations

import re
import time
from base64 import b32decode

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect

from tests import support
from tests.e2e.conftest import NEW_ADMIN, settings_link, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _code(secret: str, at: float | None = None) -> str:
    key = b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key)
    totp.time = at if at is not None else time.time()
    return f"{totp.token():06d}"


def test_an_admins_first_login_enrols_totp_and_refuses_a_wrong_code(live_url, page):
    base = live_url("acme.localhost")
    page.goto(base + "/users/")
    page.get_by_label("E-mail or username").fill(NEW_ADMIN)
    page.get_by_label("Password").fill(support.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Straight to enrolment; nothing else is reachable before it is done.
    expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.goto(base + "/audit/")
    expect(page).to_have_url(re.compile(r"/mfa/enrol/"))

    # A wrong code is refused, with a message, on the same page.
    right = _code(secret)
    page.get_by_label("Code from your app").fill("000000" if right != "000000" else "111111")
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page.get_by_text("That code is not right")).to_be_visible()
    page.wait_for_timeout(1100)  # a wrong code slows the device down for a second

    page.get_by_label("Code from your app").fill(_code(secret))
    page.get_by_role("button", name="Confirm and continue").click()
    expect(page.get_by_role("heading", name="Save your backup codes")).to_be_visible()
    expect(page.locator("#backup-codes li")).to_have_count(10)
    page.get_by_role("button", name="I saved them, continue").click()
    # On to the page last asked for (the audit trail, tried before enrolling).
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/audit/$"))
    assert page.console_problems == []


def test_an_agent_sees_only_their_own_inboxes(live_url, page):
    base = live_url("acme.localhost")
    sign_in(page, base, "agent@acme.test")
    settings_link(page, "Inboxes").click()
    expect(page.get_by_role("heading", name="Your inboxes")).to_be_visible()
    inboxes = page.locator("#inbox-list")
    expect(inboxes.get_by_role("link", name="E2E Support")).to_be_visible()
    expect(inboxes.get_by_text("E2E Sales")).to_have_count(0)
    expect(page.get_by_role("button", name="Create inbox")).to_have_count(0)
    assert page.console_problems == []


def test_an_idle_session_ends(short_idle_url, page):
    base = short_idle_url("acme.localhost")
    sign_in(page, base, "analyst@acme.test")
    expect(page.get_by_text("as Analyst")).to_be_visible()
    page.wait_for_timeout(4500)  # the server's idle timeout is 3 s
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Sign in to Acme")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login/\?next=/audit/"))
