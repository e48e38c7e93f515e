"""Every page of the README's table, for each persona that may open it:

* no console error, CSP violation or failed asset (the ``page`` fixture fails
  the test on any);
* no serious or critical axe-core violation;
* no sideways scrolling at 390, 768 and 1280 px;
* at 390 px, where a table becomes one block per row and hides its header
  row, every cell under a named column shows that name above its value.

One sign-in per persona, then a loop over its pages: the browser and the live
server are shared with the rest of the suite.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import axe_problems, sideways_scroll, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

WIDTHS = (1280, 768, 390)
# The API docs page is Swagger UI (drf-spectacular's sidecar): axe checks our
# frame of it (language, title) but not the third-party widget, whose own
# contrast and nested buttons we cannot change. Console and width checks apply.
AXE_EXCLUDE = {"/api/docs/": ("#swagger-ui",)}

EVERYONE = ["/", "/access/", "/mfa/"]
INBOX = ["/inbox/", "/inboxes/"]
CONNECTORS = ["/connectors/credentials/", "/connectors/channels/", "/connectors/ai/"]
AUDIT = ["/audit/"]
KNOWLEDGE = ["/knowledge/", "/knowledge/new/"]
BOT_HOSTS = ["/bots/hosts/"]
FLOWS = ["/flows/"]

# The README's page table, per persona (what each is allowed to open).
TENANT_PAGES = {
    "owner@acme.test": EVERYONE
    + INBOX
    + CONNECTORS
    + AUDIT
    + FLOWS
    + KNOWLEDGE
    + BOT_HOSTS
    + [
        "/users/",
        "/audit/sinks/",
        "/settings/mfa/",
        "/settings/break-glass/",
        "/settings/security/",
        "/api/docs/",
    ],
    "admin@acme.test": EVERYONE
    + INBOX
    + CONNECTORS
    + AUDIT
    + FLOWS
    + KNOWLEDGE
    + BOT_HOSTS
    + ["/users/", "/audit/sinks/"],
    "agent@acme.test": EVERYONE + INBOX,
    "analyst@acme.test": EVERYONE + AUDIT,
    "integrator@acme.test": EVERYONE + CONNECTORS + BOT_HOSTS,
    "marketer@acme.test": EVERYONE + FLOWS + KNOWLEDGE,
}
CONSOLE_PAGES = ["/", "/audit/", "/audit/sinks/"]


# The cells of visible tables whose column has a name but which do not show it
# (parley.js copies it into data-label; the narrow-screen CSS shows it), and
# cells across columns (an empty table's message) or empty ones that show one.
_UNLABELLED = """() => {
  const out = [];
  for (const table of document.querySelectorAll("table.table")) {
    const head = table.tHead && table.tHead.rows[0];
    if (!head || !table.offsetParent) continue;
    const names = [];
    for (const th of head.cells) for (let i = 0; i < th.colSpan; i++) names.push(th.textContent.trim());
    for (const body of table.tBodies) for (const row of body.rows) {
      let column = 0;
      for (const cell of row.cells) {
        const empty = !cell.textContent.trim() && !cell.querySelector("input, select, textarea, button, img, svg");
        const name = cell.colSpan === 1 && !empty ? names[column] : "";
        column += cell.colSpan;
        const shown = getComputedStyle(cell, "::before").content;
        if (!name) {
          if (shown !== "none") out.push(`${table.id || "a table"}: an empty or wide cell shows ${shown}`);
          continue;
        }
        if (cell.dataset.label !== name || shown !== JSON.stringify(name)) {
          out.push(`${table.id || "a table"}: a cell of "${name}" shows ${shown}`);
        }
      }
    }
  }
  return out.slice(0, 5);
}"""


def _check_pages(page, base: str, paths: list[str]) -> list[str]:
    problems: list[str] = []
    for path in paths:
        page.set_viewport_size({"width": 1280, "height": 800})
        response = page.goto(base + path)
        if response is None or response.status >= 400:
            problems.append(f"{path}: HTTP {response.status if response else 'none'}")
            continue
        problems += axe_problems(page, exclude=AXE_EXCLUDE.get(path, ()))
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 800})
            too_wide = sideways_scroll(page)
            if too_wide:
                problems.append(f"{too_wide} at {width} px")
            if width == 390:
                problems += [f"{path}: {p} at 390 px" for p in page.evaluate(_UNLABELLED)]
    return problems


@pytest.mark.parametrize("persona", list(TENANT_PAGES))
def test_every_tenant_page_is_clean_accessible_and_fits(live_url, page, persona):
    base = live_url("acme.localhost")
    sign_in(page, base, persona)
    problems = _check_pages(page, base, TENANT_PAGES[persona])
    assert not problems, "\n".join(problems)
    if persona == "owner@acme.test":
        _check_the_menu(page, base)
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


def _check_the_menu(page, base: str) -> None:
    """The owner's menu fits one line at 1280 px, opens and closes with the
    keyboard, and reaches every settings page (break-glass included)."""
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(base + "/")
    nav = page.locator("#site-nav").bounding_box()
    link = page.locator("#site-nav > a").first.bounding_box()
    assert nav["height"] < 2 * link["height"] + 8, "the menu wraps onto a second line"
    summary = page.locator("#settings-menu > summary")
    summary.focus()
    page.keyboard.press("Enter")
    menu = page.locator("#settings-menu .menu-panel")
    expect(menu.get_by_role("link", name="Break-glass")).to_be_visible()
    hrefs = set(menu.locator("a").evaluate_all("links => links.map((a) => a.pathname)"))
    top = {"/", "/inbox/", "/audit/", "/access/", *FLOWS, *KNOWLEDGE}
    settings_pages = set(TENANT_PAGES["owner@acme.test"]) - top
    assert settings_pages <= hrefs, settings_pages - hrefs
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()


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
    for base in (live_url("acme.localhost"), live_url("globex.localhost"), live_url()):
        problems += _check_pages(page, base, ["/login/"])
        response = page.goto(base + "/no-such-page/")
        assert response.status == 404
        assert "Not found" in page.content()
        problems += axe_problems(page)
    assert not problems, "\n".join(problems)


def test_the_checks_themselves_see_a_csp_violation_and_an_axe_problem(live_url, browser):
    """The fixture's listener and axe are live: an inline style is caught, so is
    an image without a text alternative (a check that cannot fail proves nothing)."""
    from tests.e2e.conftest import _CSP_LISTENER

    context = browser.new_context()
    context.add_init_script(_CSP_LISTENER)
    probe = context.new_page()
    try:
        probe.goto(live_url("acme.localhost") + "/login/")
        probe.evaluate(
            """() => document.body.insertAdjacentHTML(
                 "beforeend", '<div style="color:red">x</div><img src="/static/favicon.svg">')"""
        )
        probe.wait_for_function("(window.__cspViolations || []).length > 0")
        assert "style-src" in probe.evaluate("window.__cspViolations[0]")
        assert any("image-alt" in p for p in axe_problems(probe))
    finally:
        context.close()
