"""Break-glass from the platform console in a real browser.

"Open read-only" once posted and was redirected to the tenant's host, which the
console's CSP (``form-action 'self'``, which covers redirects after a form
submit) blocked: nothing happened. One click must land the operator in the
read-only session, with no CSP refusal on the way.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_open_read_only_lands_in_the_session_with_one_click(live_url, page):
    console = live_url("localhost")
    tenant = live_url("acme.localhost")
    sign_in(page, console, "operator", tenant=None)
    page.goto(console + "/tenants/acme/")
    page.get_by_label("Reason").last.fill("E2E: customer ticket 4711, messages vanish")
    page.get_by_label("Emergency: start now and notify the owners").check()
    page.get_by_role("button", name="Request break-glass access").click()
    expect(page.get_by_text("Emergency declared")).to_be_visible()

    page.get_by_role("button", name="Open acme read-only").click()
    page.wait_for_url(re.compile(re.escape(tenant) + r"/$"), timeout=10000)
    expect(page.locator("#break-glass-banner")).to_contain_text("Break-glass read-only access")
    assert not [p for p in page.console_problems if "Content Security Policy" in p]
    assert page.console_problems == []

    # Give the access back: the console credits the operator.
    page.goto(console + "/tenants/acme/")
    page.get_by_role("button", name="End now").click()
    expect(page.locator("#break-glass tbody tr").first).to_contain_text(
        "Ended by operator@parley.test"
    )
