"""Webhooks while the real Redis is stopped: every signed event is answered 200 and
kept; once Redis is back the beat relay enqueues them and a real worker processes
each one, none lost, none twice.

Its own PostgreSQL, Redis, web server, worker and beat (``tests.platform.test_resilience.Stack``
in a temporary state folder), so stopping Redis leaves the suite's services alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from connectors.channels import signature_header
from tests.connectors.meta.support import FIXTURES
from tests.platform.test_resilience import Stack, healthz, request, wait_until

pytestmark = pytest.mark.slow

HOST = "relay.localhost"
APP_SECRET = "relay-app-secret"
PHONE_ID = "106540352242922"  # the phone_number_id of tests/fixtures/meta/wa_webhook_text.json

SEED = f"""
import json
from django.contrib.auth import get_user_model
from django_tenants.utils import tenant_context
from connectors import channels
from connectors.models import Channel, ChannelCredential
from connectors.services import credential_set
from conversations.access import inbox_create
from conversations.models import Inbox
from tenants.models import Tenant
from tenants.services import tenant_create

tenant_create(slug="relay", name="Relay", domain="{HOST}", owner_email="owner@relay.test")
with tenant_context(Tenant.objects.get(slug="relay")):
    owner = get_user_model().objects.get(email="owner@relay.test")
    api, secret = channels.channel_create(
        by=owner, name="Relay API", outbound_url="https://integration.example/replies"
    )
    wa = Channel.objects.create(
        name="Relay WhatsApp", kind="whatsapp", public_id="relay-wa-1",
        settings={{"phone_number_id": "{PHONE_ID}"}},
    )
    credential = credential_set(
        name="relay-wa-app-secret", kind="webhook_secret", connector="whatsapp",
        secret="{APP_SECRET}",
    )
    ChannelCredential.objects.create(channel=wa, role="app_secret", credential=credential)
    inbox = inbox_create(by=owner, name="WhatsApp")
    Inbox.objects.filter(pk=inbox.pk).update(channel=wa)
print(json.dumps({{"api": api.public_id, "secret": secret, "wa": wa.public_id}}))
"""

COUNT = """
import json
from django_tenants.utils import tenant_context
from connectors.models import InboundEvent
from conversations.models import Message
from tenants.models import Tenant

with tenant_context(Tenant.objects.get(slug="relay")):
    print(json.dumps({
        "events": dict((s, InboundEvent.objects.filter(status=s).count())
                       for s in ("pending", "processing", "processed", "failed")),
        "messages": sorted(Message.objects.filter(direction="in", conversation__inbox__channel__kind="whatsapp")
                           .values_list("external_id", flat=True)),
        "api_messages": Message.objects.filter(direction="in", conversation__inbox__channel__kind="api").count(),
    }))
"""


@pytest.fixture(scope="module")
def stack():
    stack = Stack()
    stack.env["PARLEY_INBOUND_RELAY_SECONDS"] = "2"
    try:
        stack.devstack("up")
        stack.manage("parley_migrate", owner=True)
        seeded = stack.manage("shell", "-c", SEED, owner=True)
        stack.channels = json.loads(seeded.strip().splitlines()[-1])
        stack.start()
        yield stack
    finally:
        stack.stop()


def _whatsapp(stack, ext_id: str):
    document = json.loads((FIXTURES / "wa_webhook_text.json").read_text())
    document["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = ext_id
    raw = json.dumps(document).encode()
    mac = hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return request(
        stack,
        f"/webhooks/whatsapp/{stack.channels['wa']}/",
        host=HOST,
        method="POST",
        body=raw,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={mac}"},
    )


def _api(stack, ext_id: str):
    raw = json.dumps(
        {"type": "message", "id": ext_id, "contact": {"id": "cust-1"}, "body": "hello"}
    ).encode()
    return request(
        stack,
        f"/webhooks/api/{stack.channels['api']}/",
        host=HOST,
        method="POST",
        body=raw,
        headers={
            "Content-Type": "application/json",
            "X-Parley-Signature": signature_header(secret=stack.channels["secret"], body=raw),
        },
    )


def _counts(stack) -> dict:
    return json.loads(stack.manage("shell", "-c", COUNT).strip().splitlines()[-1])


def test_events_sent_while_redis_is_down_are_kept_and_processed_once_it_is_back(stack):
    wait_until(lambda: request(stack, "/login/", host=HOST)[0] == 200, "web up", stack)
    wait_until(lambda: healthz(stack)[0] == 200, "worker and beat up", stack)
    assert _whatsapp(stack, "wamid.before")[0] == 200
    wait_until(
        lambda: _counts(stack)["messages"] == ["wamid.before"], "the first event processed", stack
    )

    stack.devstack("stop-redis")
    wait_until(lambda: healthz(stack)[0] == 503, "Redis seen down", stack)
    ids = [f"wamid.during-{i}" for i in range(5)]
    for ext_id in ids:
        started = time.monotonic()
        status, _, body = _whatsapp(stack, ext_id)
        took = time.monotonic() - started
        print(f"webhook while Redis is down answered {status} in {took:.3f} s")
        assert took < 2, took  # no wait on the dead broker
        assert status == 200, (body[:300], stack.log()[-4000:])
        assert json.loads(body)["duplicate"] is False
    # Meta's retry of one of them while Redis is still down: the same event.
    status, _, body = _whatsapp(stack, ids[0])
    assert status == 200 and json.loads(body)["duplicate"] is True
    # The API channel's events are processed in the request, Redis or not.
    status, _, body = _api(stack, "api-during")
    assert status == 200 and json.loads(body)["duplicate"] is False, body[:300]
    counts = _counts(stack)
    assert counts["events"]["pending"] == 5, counts
    assert counts["messages"] == ["wamid.before"] and counts["api_messages"] == 1

    stack.devstack("start-redis")
    wait_until(
        lambda: _counts(stack)["messages"] == sorted(["wamid.before", *ids]),
        "every event processed after Redis is back",
        stack,
        timeout=120,
    )
    counts = _counts(stack)
    assert counts["events"] == {"pending": 0, "processing": 0, "processed": 7, "failed": 0}
    assert "inbound_events_relay" in stack.log()
