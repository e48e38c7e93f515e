"""The agent inbox in a real browser, end to end through the API channel:

* a message posted (signed) to the channel's webhook appears in the open
  inbox within 3 seconds, without a reload;
* the agent's reply is delivered, signed, to a local HTTP receiver by a real
  Celery worker, and its status ("Sent", then "Delivered" from the channel)
  follows live;
* an agent who is not in that inbox sees nothing of the conversation;
* a marketer gets 403 on the inbox.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import CHANNEL_PUBLIC_ID as PUBLIC_ID
from tests.e2e.conftest import CHANNEL_RECEIVED as RECEIVED
from tests.e2e.conftest import CHANNEL_SECRET as SECRET
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _post_inbound(base: str, *, external_id: str, body: str) -> dict:
    return _post_signed(
        base,
        {
            "type": "message",
            "id": external_id,
            "contact": {"id": "e2e-customer-1", "name": "Edith Customer"},
            "body": body,
        },
    )


def _post_signed(base: str, event: dict) -> dict:
    payload = json.dumps(event).encode()
    t = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    # *.localhost resolves in browsers, not in every resolver: connect to the
    # loopback address and name the tenant in the Host header.
    host = base.split("//", 1)[1]
    loopback = "http://127.0.0.1:" + host.rsplit(":", 1)[1]
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        f"{loopback}/webhooks/api/{PUBLIC_ID}/",
        data=payload,
        headers={
            "Content-Type": "application/json",
            "X-Parley-Signature": f"t={t},v1={mac}",
            "Host": host,
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def test_a_message_arrives_live_and_the_reply_is_delivered(live_url, page, default_worker):
    base = live_url("acme.localhost")
    first = _post_inbound(base, external_id="e2e-m-1", body="Hello, is anyone there?")
    assert first["ok"] is True

    sign_in(page, base, "agent@acme.test")
    page.get_by_role("link", name="Inbox", exact=True).click()
    page.get_by_role("link", name="Edith Customer").click()
    expect(page.locator("#messages")).to_contain_text("Hello, is anyone there?")
    page.evaluate("window.__noReload = true")

    # A new message through the channel: on screen within 3 s, same page.
    _post_inbound(base, external_id="e2e-m-2", body="My parcel never arrived")
    expect(page.locator("#messages")).to_contain_text("My parcel never arrived", timeout=3000)
    assert page.evaluate("window.__noReload") is True

    # The reply goes out through the connector to the receiver, signed.
    page.get_by_label("Reply").fill("Sorry about that, I am checking with the courier.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#messages")).to_contain_text("checking with the courier")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not RECEIVED:
        time.sleep(0.2)
    assert RECEIVED, "the reply never reached the receiver"
    delivered = RECEIVED[-1]
    event = json.loads(delivered["raw"])
    assert event["type"] == "message" and "checking with the courier" in event["body"]
    assert event["contact_id"] == "e2e-customer-1"
    parts = dict(p.split("=", 1) for p in delivered["signature"].split(","))
    expected = hmac.new(
        SECRET.encode(), f"{parts['t']}.".encode() + delivered["raw"], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    # The delivery status comes back to the thread without a reload.
    expect(page.locator("#messages .delivery").last).to_have_attribute(
        "data-status", "sent", timeout=10000
    )
    # The channel reports it delivered: the open thread shows it within 3 s.
    _post_signed(base, {"type": "status", "message_id": event["id"], "status": "delivered"})
    expect(page.locator(f"#m-{event['id']} .delivery")).to_have_attribute(
        "data-status", "delivered", timeout=3000
    )
    expect(page.locator(f"#m-{event['id']} .delivery")).to_have_text("Delivered")
    assert page.evaluate("window.__noReload") is True
    assert page.console_problems == []


def test_an_agent_outside_the_inbox_sees_nothing(live_url, page):
    base = live_url("acme.localhost")
    _post_inbound(base, external_id="e2e-m-3", body="Anyone?")
    sign_in(page, base, "agent2@acme.test")
    page.goto(base + "/inbox/?status=any")
    expect(page.locator("#conversation-items")).not_to_contain_text("Edith Customer")
    assert "Anyone?" not in page.content()


def test_a_marketer_gets_403_on_the_inbox(live_url, page):
    base = live_url("acme.localhost")
    sign_in(page, base, "marketer@acme.test")
    response = page.goto(base + "/inbox/")
    assert response.status == 403
    expect(page.get_by_role("link", name="Inbox", exact=True)).to_have_count(0)
