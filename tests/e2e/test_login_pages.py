"""A person signs in to a tenant and to the console in a real browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests import support
from tests.e2e.conftest import settings_link, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_it_signs_an_owner_in_and_keeps_the_other_tenant_out(live_url, page, e2e_data):
    page.goto(live_url("acme.localhost") + "/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    expect(page.get_by_role("heading", name="Sign in to Acme")).to_be_visible()
    page.get_by_label("E-mail or username").fill("owner@acme.test")
    page.get_by_label("Password").fill(support.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # The second factor comes before anything else, then the page asked for.
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    page.get_by_label("Code").fill(e2e_data[("acme", "owner@acme.test")].pop())
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text("as Owner")).to_be_visible()
    settings_link(page, "Users").click()
    expect(page.get_by_role("cell", name="agent2@acme.test")).to_be_visible()
    assert "globex" not in page.content()

    # The same browser at globex: no session there, back to a login page.
    page.goto(live_url("globex.localhost") + "/users/")
    expect(page.get_by_role("heading", name="Sign in to Globex")).to_be_visible()
    assert page.console_problems == []


def test_it_hides_the_users_menu_from_an_agent(live_url, page):
    sign_in(page, live_url("acme.localhost"), "agent@acme.test")
    expect(page.get_by_text("as Support agent")).to_be_visible()
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    response = page.goto(live_url("acme.localhost") + "/users/")
    assert response.status == 403


def test_it_lets_an_operator_use_the_console(live_url, page, e2e_data):
    page.goto(live_url() + "/")
    expect(page.get_by_role("heading", name="Platform console")).to_be_visible()
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill(support.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Code").fill(e2e_data[(None, "operator")].pop())
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Tenants")).to_be_visible()
    expect(page.get_by_role("link", name="acme", exact=True)).to_be_visible()
    # A bad request shows what is wrong, in the page.
    page.get_by_label("Slug").fill("www")
    page.get_by_label("Name").fill("Nope")
    page.get_by_label("Domain").fill("nope.localhost")
    page.get_by_label("Owner e-mail").fill("x@nope.test")
    page.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_text("The slug 'www' is reserved.")).to_be_visible()
    page.get_by_role("link", name="acme", exact=True).click()
    expect(page.get_by_text("t_acme")).to_be_visible()
    assert page.console_problems == []
