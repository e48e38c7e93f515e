"""The web chat widget in a real browser, end to end:

* on the demo page (a strict CSP, the widget added by one script tag) a visitor
  writes; the message appears in the agent's inbox; the agent's reply appears
  in the widget — no reloads anywhere;
* a second visitor (a new browser context) sees nothing of the first one's
  conversation.
"""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import axe_problems, sideways_scroll, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="session")
def webchat(live_url, django_db_blocker):
    """The demo's web chat channel, allowing the live server's tenant origin."""
    base = live_url("acme.localhost")
    failures: list[BaseException] = []

    def setup():
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django_tenants.utils import schema_context

        from connectors.webchat.services import webchat_demo_ensure

        User = get_user_model()
        try:
            with schema_context("t_acme"):
                webchat_demo_ensure(
                    by=User.objects.get(email="owner@acme.test"),
                    origin=base,
                    members=[User.objects.get(email="agent@acme.test")],
                )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            failures.append(exc)
        finally:
            connection.close()

    # In a thread of its own: Playwright's event loop may already run in this one
    # (the browser is package-scoped), and Django refuses database calls there.
    with django_db_blocker.unblock():
        worker = threading.Thread(target=setup)
        worker.start()
        worker.join(60)
    if failures:
        raise failures[0]
    return base


def _problems(page) -> list[str]:
    # The frame's first poll may be cut short by a context closing: not a bug.
    return [p for p in page.console_problems if "net::ERR_ABORTED" not in p]


def test_a_visitor_chats_with_an_agent_live(webchat, browser, page):
    base = webchat
    visitor = browser.new_context(viewport={"width": 1200, "height": 800})
    customer = visitor.new_page()
    problems: list[str] = []
    customer.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    customer.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
    customer.goto(base + "/demo/chat/")
    customer.evaluate("window.__noReload = true")
    chat = customer.frame_locator("iframe[data-parley-webchat]")
    chat.get_by_role("button", name="Chat with us").click()
    chat.get_by_label("Your message").fill("Hello from the website <b>WIDGET-MARK</b>")
    chat.get_by_role("button", name="Send").click()
    log = chat.get_by_role("log")
    expect(log).to_contain_text("Hello from the website <b>WIDGET-MARK</b>")  # text, not markup

    sign_in(page, base, "agent@acme.test")
    page.get_by_role("link", name="Inbox", exact=True).click()
    page.get_by_role("link", name="Web visitor").first.click()
    expect(page.locator("#messages")).to_contain_text("WIDGET-MARK")
    page.evaluate("window.__noReload = true")

    # A second message arrives in the open thread live.
    chat.get_by_label("Your message").fill("Are you there?")
    chat.get_by_label("Your message").press("Enter")
    expect(page.locator("#messages")).to_contain_text("Are you there?", timeout=5000)

    page.get_by_label("Reply").fill("Hi! REPLY-MARK-7731 here to help.")
    page.get_by_role("button", name="Send").click()
    expect(log).to_contain_text("REPLY-MARK-7731", timeout=10000)
    expect(log.locator(".msg.agent")).to_have_count(1)
    # The widget's poll delivered it (and the widget, open and visible, read it).
    expect(page.locator("#messages .delivery").last).to_have_attribute(
        "data-status", "read", timeout=10000
    )
    assert customer.evaluate("window.__noReload") is True
    assert page.evaluate("window.__noReload") is True

    # A second visitor: a new context sees an empty chat, and only their own words.
    other = browser.new_context()
    stranger = other.new_page()
    stranger.goto(base + "/demo/chat/")
    theirs = stranger.frame_locator("iframe[data-parley-webchat]")
    theirs.get_by_role("button", name="Chat with us").click()
    theirs.get_by_label("Your message").fill("STRANGER-MARK")
    theirs.get_by_role("button", name="Send").click()
    expect(theirs.get_by_role("log")).to_contain_text("STRANGER-MARK")
    stranger.wait_for_timeout(1500)
    text = theirs.get_by_role("log").inner_text()
    assert "WIDGET-MARK" not in text and "REPLY-MARK" not in text
    other.close()
    visitor.close()
    assert [p for p in problems if "ERR_ABORTED" not in p] == []
    assert _problems(page) == []


def test_the_widget_goes_full_screen_on_a_phone_and_closes_with_escape(webchat, browser):
    context = browser.new_context(viewport={"width": 375, "height": 700})
    phone = context.new_page()
    phone.goto(webchat + "/demo/chat/")
    chat = phone.frame_locator("iframe[data-parley-webchat]")
    chat.get_by_role("button", name="Chat with us").click()
    expect(chat.get_by_label("Your message")).to_be_focused()
    frame = phone.locator("iframe[data-parley-webchat]")
    expect(frame).to_have_js_property("offsetWidth", 375)
    chat.get_by_label("Your message").press("Escape")
    expect(chat.get_by_role("button", name="Chat with us")).to_be_focused()
    assert phone.locator("iframe[data-parley-webchat]").evaluate("e => e.offsetWidth") < 375
    context.close()


def test_the_demo_page_and_the_open_chat_are_accessible_and_fit(webchat, page):
    page.goto(webchat + "/demo/chat/")
    assert axe_problems(page) == []
    src = page.locator("iframe[data-parley-webchat]").get_attribute("src")
    # The chat itself, opened and holding a message (axe runs in the frame's own page).
    page.goto(src)
    page.get_by_role("button", name="Chat with us").click()
    page.get_by_label("Your message").fill("An accessible hello")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("log")).to_contain_text("An accessible hello")
    problems = axe_problems(page)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 700})
        problems += [p for p in [sideways_scroll(page)] if p]
    assert problems == []
    assert page.console_problems == []
