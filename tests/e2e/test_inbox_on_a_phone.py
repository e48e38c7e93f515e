"""The agent inbox at 390 px: a list that opens a thread, a reply, and the way back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import sideways_scroll, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_an_agent_on_a_phone_opens_a_conversation_replies_and_goes_back(live_url, page):
    base = live_url("acme.localhost")
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, base, "agent@acme.test")
    # The navigation is collapsed behind one button.
    expect(page.get_by_role("link", name="Inbox", exact=True)).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    page.get_by_role("link", name="Inbox", exact=True).click()

    conversations = page.locator("#conversation-items")
    expect(conversations.get_by_text("Petra Phone")).to_be_visible()
    expect(page.locator("#thread")).to_be_hidden()
    assert sideways_scroll(page) is None

    conversations.get_by_role("link", name=re.compile("Petra Phone")).click()
    expect(page.locator("#messages")).to_contain_text("delivery address")
    expect(conversations).to_be_hidden()  # the thread takes the whole screen
    assert sideways_scroll(page) is None

    page.get_by_label("Reply").fill("Yes: send me the new address and I will change it.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#messages")).to_contain_text("send me the new address")
    assert sideways_scroll(page) is None

    page.get_by_role("link", name="All conversations").click()
    expect(conversations.get_by_text("Petra Phone")).to_be_visible()
    expect(page.locator("#thread")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/inbox/$"))
    assert sideways_scroll(page) is None
