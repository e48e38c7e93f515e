"""Every page of the README's table, for each persona that may open it:

* no console error, CSP violation or failed asset (the ``page`` fixture fails
  the test on any);
* no serious or critical axe-core violation;
* no sideways scrolling at 390, 768 and 1280 px.

One sign-in per persona, then a loop over its pages: the browser and the live
server are shared with the rest of the suite.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import axe_problems, sideways_scroll, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

WIDTHS = (1280, 768, 390)

EVERYONE = ["/", "/access/", "/mfa/"]
INBOX = ["/inbox/", "/inboxes/"]
CONNECTORS = ["/connectors/credentials/", "/connectors/channels/"]
AUDIT = ["/audit/"]

# The README's page table, per persona (what each is allowed to open).
TENANT_PAGES = {
    "owner@acme.test": EVERYONE
    + INBOX
    + CONNECTORS
    + AUDIT
    + [
        "/users/",
        "/audit/sinks/",
        "/settings/mfa/",
        "/settings/break-glass/",
        "/settings/security/",
    ],
    "admin@acme.test": EVERYONE + INBOX + CONNECTORS + AUDIT + ["/users/", "/audit/sinks/"],
    "agent@acme.test": EVERYONE + INBOX,
    "analyst@acme.test": EVERYONE + AUDIT,
    "integrator@acme.test": EVERYONE + CONNECTORS,
    "marketer@acme.test": EVERYONE,
}
CONSOLE_PAGES = ["/", "/audit/", "/audit/sinks/"]


def _check_pages(page, base: str, paths: list[str]) -> list[str]:
    problems: list[str] = []
    for path in paths:
        page.set_viewport_size({"width": 1280, "height": 800})
        response = page.goto(base + path)
        if response is None or response.status >= 400:
            problems.append(f"{path}: HTTP {response.status if response else 'none'}")
            continue
        problems += axe_problems(page)
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            too_wide = sideways_scroll(page)
            if too_wide:
                problems.append(f"{too_wide} at {width} px")
    return problems


@pytest.mark.parametrize("persona", list(TENANT_PAGES))
def test_every_tenant_page_is_clean_accessible_and_fits(live_url, page, persona):
    base = live_url("acme.localhost")
    sign_in(page, base, persona)
    problems = _check_pages(page, base, TENANT_PAGES[persona])
    assert not problems, "\n".join(problems)
    if persona == "admin@acme.test":
        # The SIEM sink form shows the fields of the chosen kind only.
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(base + "/audit/sinks/")
        page.locator("#id_kind").select_option("https")
        expect(page.locator("#id_host")).to_be_hidden()
        expect(page.locator("#id_url")).to_be_visible()
        page.locator("#id_kind").select_option("syslog")
        expect(page.locator("#id_host")).to_be_visible()
        expect(page.locator("#id_url")).to_be_hidden()


def test_every_console_page_is_clean_accessible_and_fits(live_url, page):
    base = live_url()
    sign_in(page, base, "operator", tenant=None)
    problems = _check_pages(page, base, CONSOLE_PAGES)
    # The tenant detail page, reached like a person would.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(base + "/")
    page.get_by_role("link", name="acme", exact=True).click()
    page.wait_for_load_state()
    problems += axe_problems(page)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        problems += [p for p in [sideways_scroll(page)] if p]
    assert not problems, "\n".join(problems)


def test_sign_in_and_error_pages_are_clean_accessible_and_fit(live_url, page):
    problems: list[str] = []
    for base in (live_url("acme.localhost"), live_url()):
        problems += _check_pages(page, base, ["/login/"])
        response = page.goto(base + "/no-such-page/")
        assert response.status == 404
        assert "Not found" in page.content()
        problems += axe_problems(page)
    assert not problems, "\n".join(problems)
