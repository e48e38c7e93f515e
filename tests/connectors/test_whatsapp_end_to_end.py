"""Issue 12's "done": WhatsApp end to end with a real Celery worker and a local Graph API.

A customer's text arrives on the signed webhook and the worker stores it; an agent
replies; the worker sends it to the Graph server with the channel's token as
``Bearer`` and the documented body. Meta's 130429 is retried with backoff (the
message ends sent, two requests seen); 131047 leaves the agent the clear message on
the thread page; 190 marks the channel ``auth_failed``, audited.
"""

from __future__ import annotations

import contextlib
import time
import uuid

import pytest
from django.db import connection
from django_tenants.utils import tenant_context
from guardian.models import UserObjectPermission

from accounts.models import TOTPDevice
from audit.models import AuditEvent
from connectors.delivery import OUTSIDE_WINDOW
from connectors.inbound import drain_flag_lower
from connectors.models import Channel, Credential, InboundEvent
from connectors.tasks import (
    inbound_event_process,
    inbound_events_drain,
    message_deliver,
    message_drain,
)
from conversations.models import Contact, ContactIdentity, Conversation, Inbox, Message
from tenants.models import Tenant
from tests import support
from tests.connectors.meta.support import TOKEN
from tests.connectors.whatsapp_flow import (
    CUSTOMER,
    PHONE_NUMBER_ID,
    REPLY,
    agent_replies,
    customer_text,
    post_signed,
    whatsapp_channel,
)
from tests.fakes.graph import FakeGraph, fixture

pytestmark = pytest.mark.slow

WAIT = 90  # seconds: a retry waits ~10-12 s of backoff; a cold worker needs a few more


def _wait_for(tenant, probe, what: str, worker):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with tenant_context(tenant):
            found = probe()
        connection.set_schema_to_public()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {WAIT}s\n{worker.log.read_text()[-3000:]}")


def _delivered(tenant, reply_id: int, worker) -> Message:
    def probe():
        message = Message.objects.get(pk=reply_id)
        return message if message.delivery not in ("queued", "") else None

    return _wait_for(tenant, probe, f"delivery of reply {reply_id}", worker)


@contextlib.contextmanager
def _committed_whatsapp(tenant, graph_base_url: str):
    """A committed WhatsApp channel (the worker sees it), and everything it made removed afterwards."""
    with tenant_context(tenant):
        devices = set(TOTPDevice.objects.values_list("pk", flat=True))
    connection.set_schema_to_public()
    channel = whatsapp_channel(tenant, graph_base_url)
    try:
        yield channel
    finally:
        with tenant_context(tenant):
            inbox_id = channel.inbox.pk
            contacts = list(
                ContactIdentity.objects.filter(channel=channel).values_list("contact_id", flat=True)
            )
            credentials = list(channel.credential_links.values_list("credential_id", flat=True))
            Message.objects.filter(inbox_id_denorm=inbox_id).delete()
            Conversation.objects.filter(inbox_id=inbox_id).delete()
            ContactIdentity.objects.filter(channel=channel).delete()
            Contact.objects.filter(pk__in=contacts).delete()
            InboundEvent.objects.filter(channel=channel).delete()
            UserObjectPermission.objects.filter(object_pk=str(inbox_id)).delete()
            Inbox.objects.filter(pk=inbox_id).delete()
            Channel.objects.filter(pk=channel.pk).delete()
            Credential.objects.filter(pk__in=credentials).delete()
            TOTPDevice.objects.exclude(pk__in=devices).delete()
        connection.set_schema_to_public()


def test_whatsapp_text_in_reply_out_retry_window_and_auth_with_a_real_worker(
    django_db_blocker, monkeypatch
):
    queue = f"wa-e2e-{uuid.uuid4().hex[:6]}"
    # The webhook (a drain of its tenant) and reply_queued (a drain of its inbox's
    # replies) enqueue with .delay on commit: route them to this test's own worker.
    for task in (inbound_event_process, inbound_events_drain, message_drain, message_deliver):
        monkeypatch.setattr(
            task,
            "delay",
            lambda *args, _task=task, **kwargs: _task.apply_async(args, kwargs, queue=queue),
        )
    worker = None
    with django_db_blocker.unblock(), FakeGraph(token=TOKEN) as graph:
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug="globex")
        # A drain flag left by an earlier test would stand for a drain this worker never sees.
        with tenant_context(tenant):
            drain_flag_lower()
        with _committed_whatsapp(tenant, graph.base_url) as channel:
            try:
                worker = support.Worker(queue).start()

                # 1. The customer writes; the signed webhook stores it, the worker files it.
                answer = post_signed(tenant, channel, customer_text())
                assert answer.status_code == 200, answer.content
                inbound = _wait_for(
                    tenant,
                    lambda: Message.objects.filter(
                        inbox_id_denorm=channel.inbox.pk, direction="in"
                    ).first(),
                    "the customer's message",
                    worker,
                )

                # 2. Meta answers 130429 first, then accepts: sent after a retry.
                graph.answer(
                    400, fixture("graph_error_130429_rate_limit.json"), {"Retry-After": "1"}
                )
                reply = agent_replies(tenant, channel, inbound)
                reply = _delivered(tenant, reply.pk, worker)
                assert reply.delivery == "sent", reply.delivery_error
                assert reply.delivery_attempts == 2 and reply.external_id.startswith("wamid.")
                assert len(graph.requests) == 2
                for request in graph.requests:
                    assert request.method == "POST"
                    assert request.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
                    assert request.headers["authorization"] == f"Bearer {TOKEN}"
                    assert request.json == {
                        "messaging_product": "whatsapp",
                        "recipient_type": "individual",
                        "to": CUSTOMER,
                        "type": "text",
                        "text": {"preview_url": False, "body": REPLY},
                    }
                assert [e["status"] for e in reply.delivery_log] == [400, 200]

                # 3. Outside the 24-hour window: failed, and the agent reads why.
                graph.fail("outside_window")
                late = agent_replies(tenant, channel, inbound, body="Are you still there?")
                late = _delivered(tenant, late.pk, worker)
                assert late.delivery == "failed" and late.delivery_error == OUTSIDE_WINDOW
                page = support.signed_in(tenant, "agent@globex.test").get(
                    f"/inbox/c/{inbound.conversation_id}/"
                )
                assert page.status_code == 200
                html = page.content.decode()
                row = html[html.index(f'id="m-{late.pk}"') :]
                assert (
                    "This customer last wrote more than 24 hours ago: WhatsApp only allows a "
                    "template message now." in row[: row.index("</small>")]
                )

                # 4. The token is refused (190): the channel is unhealthy and it is audited.
                graph.fail("expired_token")
                refused = agent_replies(tenant, channel, inbound, body="One more thing.")
                refused = _delivered(tenant, refused.pk, worker)
                assert refused.delivery == "failed" and refused.delivery_attempts == 1
                with tenant_context(tenant):
                    unhealthy = Channel.objects.get(pk=channel.pk)
                    assert unhealthy.health == "auth_failed"
                    assert unhealthy.last_error_code == "auth_failed"
                    assert AuditEvent.objects.filter(
                        action="channel.auth_failed", target_id=str(channel.pk)
                    ).exists()
                connection.set_schema_to_public()
                assert len(graph.requests) == 4

                log = worker.log.read_text()
                assert TOKEN not in log and REPLY not in log
            finally:
                if worker:
                    worker.stop()
                connection.set_schema_to_public()
