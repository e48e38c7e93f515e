"""An integrator stores and rotates a credential in a real browser; the secret never comes back."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import settings_link, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SECRET = "pat-na1-BROWSER-MARKER-9d41"


def test_it_stores_a_secret_it_never_shows_again(live_url, page):
    base = live_url("acme.localhost")
    sign_in(page, base, "integrator@acme.test")
    settings_link(page, "Credentials").click()
    page.get_by_label("Name").fill("e2e-hubspot")
    page.get_by_label("Connector").fill("hubspot")
    page.get_by_label("Secret", exact=True).fill(SECRET)
    page.get_by_role("button", name="Store credential").click()
    expect(
        page.get_by_text("Credential e2e-hubspot stored (encrypted, write-only).")
    ).to_be_visible()
    expect(page.get_by_role("cell", name="••••9d41")).to_be_visible()
    assert SECRET not in page.content()
    row = page.get_by_role("row").filter(has_text="e2e-hubspot")  # other credentials may be listed
    page.get_by_label("New secret for e2e-hubspot").fill(SECRET + "-v2")
    row.get_by_role("button", name="Replace").click()
    expect(page.get_by_text("Secret of e2e-hubspot replaced")).to_be_visible()
    page.get_by_role("row").filter(has_text="e2e-hubspot").get_by_role(
        "button", name="Test"
    ).click()
    expect(page.get_by_text("e2e-hubspot: the stored secret decrypts")).to_be_visible()
    assert SECRET not in page.content()
    # Delete asks first (a confirm step, no inline script): "Cancel" keeps it.
    asked: list[str] = []

    def answer(accept: bool):
        def on_dialog(dialog):
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return on_dialog

    delete = (
        page.get_by_role("row").filter(has_text="e2e-hubspot").get_by_role("button", name="Delete")
    )
    page.once("dialog", answer(False))
    delete.click()
    expect(page.get_by_role("cell", name="e2e-hubspot", exact=True)).to_be_visible()
    assert asked and "Delete the credential e2e-hubspot?" in asked[0]
    page.once("dialog", answer(True))
    delete.click()
    expect(page.get_by_text("Credential e2e-hubspot deleted.")).to_be_visible()
    assert page.console_problems == []
