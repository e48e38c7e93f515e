"""Screenshots for the README (docs/img/), made against the suite's seeded data.

Skipped unless PARLEY_SCREENSHOTS=1:

    PARLEY_SCREENSHOTS=1 make test ARGS="tests/e2e/test_screenshots.py"
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests import support
from tests.e2e.conftest import CHANNEL_SECRET, sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("PARLEY_SCREENSHOTS") != "1", reason="set PARLEY_SCREENSHOTS=1"
    ),
]

OUT = support.BASE_DIR / "docs" / "img"
SUPPORT_CHANNEL = ("e2e-support-channel-0001", CHANNEL_SECRET + "-support")
CUSTOMERS = [
    ("shot-1", "Maya Fischer", "Hi! My order #4411 still shows 'processing' after four days."),
    ("shot-2", "Jonas Berg", "Can I change the delivery address of my order?"),
    ("shot-3", "Lena Okafor", "The discount code SPRING10 is not accepted at checkout."),
]


def _post(base: str, contact: str, name: str, body: str) -> None:
    public_id, secret = SUPPORT_CHANNEL
    payload = json.dumps(
        {
            "type": "message",
            "id": f"{contact}-{int(time.time() * 1000)}",
            "contact": {"id": contact, "name": name},
            "body": body,
        }
    ).encode()
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    host = base.split("//", 1)[1]
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        f"http://127.0.0.1:{host.rsplit(':', 1)[1]}/webhooks/api/{public_id}/",
        data=payload,
        headers={
            "Content-Type": "application/json",
            "X-Parley-Signature": f"t={t},v1={mac}",
            "Host": host,
        },
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310


def test_it_takes_the_readme_screenshots(live_url, page, default_worker):
    base = live_url("acme.localhost")
    for contact, name, body in CUSTOMERS:
        _post(base, contact, name, body)
    OUT.mkdir(parents=True, exist_ok=True)

    sign_in(page, base, "agent@acme.test")
    page.goto(base + "/inbox/")
    expect(page.locator("#conversation-items")).to_contain_text("Lena Okafor", timeout=15000)
    page.locator("#conversation-items").get_by_text("Maya Fischer").click()
    expect(page.locator("#messages")).to_contain_text("order #4411")
    page.screenshot(path=str(OUT / "inbox-1280.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base + "/inbox/")
    page.screenshot(path=str(OUT / "inbox-390-list.png"))
    page.locator("#conversation-items").get_by_text("Maya Fischer").click()
    expect(page.locator("#messages")).to_contain_text("order #4411")
    page.screenshot(path=str(OUT / "inbox-390-thread.png"))

    page.context.clear_cookies()
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, base, "owner@acme.test")
    page.goto(base + "/")
    expect(page.get_by_role("heading", name="Security posture")).to_be_visible()
    page.screenshot(path=str(OUT / "owner-dashboard.png"), full_page=True)
