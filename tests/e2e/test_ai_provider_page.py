"""An owner configures the AI provider on a phone-sized screen, tests it against the
local fake provider, and never sees the key again."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import axe_problems, settings_link, sideways_scroll, sign_in
from tests.fakes.llm import FakeLLM

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

KEY = "sk-e2e-BROWSER-MARKER-7b3c"


def test_an_owner_configures_tests_and_deletes_the_provider_at_390px(live_url, page):
    base = live_url("acme.localhost")
    sign_in(page, base, "owner@acme.test")
    with FakeLLM(key=KEY) as llm:
        settings_link(page, "AI provider").click()  # the menu, at desktop width
        page.set_viewport_size({"width": 390, "height": 844})
        expect(page.get_by_role("heading", name="AI provider")).to_be_visible()
        assert sideways_scroll(page) is None
        # A bad URL first: the error is on its field, nothing is stored.
        page.get_by_label("Name").fill("e2e-llm")
        page.get_by_label("Base URL").fill("http://api.example.com/v1")
        page.get_by_label("Model").fill("gpt-test")
        page.get_by_label("API key").fill(KEY)
        page.get_by_role("button", name="Save provider").click()
        expect(page.get_by_text("Use https")).to_be_visible()
        assert KEY not in page.content()
        # Fixed, with the keyboard only from the URL field on.
        page.get_by_label("Base URL").fill(llm.base_url)
        page.get_by_label("API key").fill(KEY)
        page.get_by_label("API key").press("Enter")
        expect(page.get_by_text("AI provider e2e-llm saved")).to_be_visible()
        row = page.get_by_role("row").filter(has_text="e2e-llm")
        expect(row.get_by_text("••••7b3c")).to_be_visible()
        assert sideways_scroll(page) is None
        assert axe_problems(page) == []
        row.get_by_role("button", name="Test").click()
        expect(page.get_by_text("e2e-llm: the provider answered.")).to_be_visible()
        expect(
            page.get_by_role("row").filter(has_text="e2e-llm").get_by_text("Working")
        ).to_be_visible()
        assert llm.requests[0].headers["authorization"] == f"Bearer {KEY}"
        assert KEY not in page.content()
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("row").filter(has_text="e2e-llm").get_by_role(
            "button", name="Delete"
        ).click()
        expect(page.get_by_text("AI provider e2e-llm deleted, with its key.")).to_be_visible()
    assert page.console_problems == []
