"""An analyst reads and filters the audit trail in a real browser (htmx, no reload)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _sign_in(page, base, email):
    sign_in(page, base, email)


def test_it_filters_the_audit_trail_without_reloading(live_url, page):
    base = live_url("acme.localhost")
    # A failed sign-in to filter for, then the analyst's own sign-in.
    page.goto(base + "/login/")
    page.get_by_label("E-mail or username").fill("nobody@acme.test")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    _sign_in(page, base, "analyst@acme.test")
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    page.evaluate("window.__marker = 'same page'")
    page.get_by_label("Outcome").select_option("failed")
    expect(page.locator("#audit-table")).to_contain_text("username=nobody@acme.test")
    expect(page.locator("#audit-table")).not_to_contain_text("auth.login.succeeded")
    assert page.evaluate("window.__marker") == "same page"  # htmx swapped the table only
    assert "outcome=failed" in page.url
    assert page.console_problems == []


def test_the_export_follows_the_filters_and_the_sink_form_shows_one_kind(live_url, page):
    base = live_url("acme.localhost")
    _sign_in(page, base, "owner@acme.test")
    page.goto(base + "/audit/")
    page.get_by_label("Outcome").select_option("denied")
    # The export form's hidden filters follow the htmx-updated results.
    expect(page.locator("#export-filters input[name=outcome]")).to_have_value("denied")
    expect(page.locator("#export-filters")).to_contain_text("Outcome: denied")

    page.goto(base + "/audit/sinks/")
    page.get_by_label("Kind").select_option("https")
    expect(page.get_by_label("HTTPS URL")).to_be_visible()
    expect(page.get_by_label("Syslog host")).to_be_hidden()
    page.get_by_label("Kind").select_option("syslog")
    expect(page.get_by_label("Syslog host")).to_be_visible()
    expect(page.get_by_label("HTTPS URL")).to_be_hidden()
    assert page.console_problems == []
