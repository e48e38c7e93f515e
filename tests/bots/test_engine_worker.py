"""End to end with a real worker: a signed message into an API-channel inbox served by a
published flow; the worker runs the bot, and the bot's reply goes out through the
channel's delivery to a real local receiver."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from bots.models import Flow, FlowRun, FlowVersion
from conversations.models import Conversation, Message
from conversations.services import body_of
from tenants.models import Tenant
from tests.connectors.test_api_channel import Receiver, _committed_channel, _inbound, _post

GRAPH = {
    "nodes": [
        {"id": "start", "type": "start", "config": {}},
        {
            "id": "ask",
            "type": "ask",
            "config": {"text": "Hi {{contact.name}}! Your order number?", "variable": "order"},
        },
        {"id": "bye", "type": "end", "config": {"text": "Thanks, we look at order {{order}}."}},
    ],
    "edges": [
        {"from": "start", "port": "next", "to": "ask"},
        {"from": "ask", "port": "next", "to": "bye"},
    ],
}


def _wait(predicate, worker, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(worker.log.read_text()[-3000:])


@pytest.mark.slow
def test_a_message_into_a_bot_served_inbox_is_answered_by_the_worker(
    django_db_blocker, default_worker
):
    receiver = Receiver()
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug="globex")
        flow = None
        try:
            with _committed_channel(tenant, receiver.url) as (channel, secret):
                with tenant_context(tenant):
                    flow = Flow.objects.create(name=f"E2E {uuid.uuid4().hex[:6]}")
                    flow.inboxes.add(channel.inbox)
                    version = FlowVersion.objects.create(
                        flow=flow,
                        number=1,
                        status="published",
                        graph=GRAPH,
                        published_at=timezone.now(),
                    )
                    flow.live_version = version
                    flow.save()
                connection.set_schema_to_public()
                contact = f"bot-{uuid.uuid4().hex[:6]}"
                first = _post(
                    "globex",
                    channel,
                    _inbound("e2e-1", contact=contact, body="hello"),
                    secret=secret,
                )
                assert first.status_code == 200, first.content

                def bot_messages():
                    with tenant_context(tenant):
                        return list(
                            Message.objects.filter(
                                inbox_id_denorm=channel.inbox.pk, sender="bot", kind="message"
                            ).order_by("id")
                        )

                [question] = _wait(bot_messages, default_worker)
                with tenant_context(tenant):
                    assert body_of(question) == "Hi Ada Lovelace! Your order number?"
                    conversation = Conversation.objects.get(pk=question.conversation_id)
                    assert conversation.handler == "bot"
                # The reply goes out through the channel, signed, to the receiver.
                _wait(lambda: receiver.requests, default_worker)
                assert json.loads(receiver.requests[0]["raw"])["body"] == (
                    "Hi Ada Lovelace! Your order number?"
                )
                second = _post(
                    "globex",
                    channel,
                    _inbound("e2e-2", contact=contact, body="A-77"),
                    secret=secret,
                )
                assert second.status_code == 200
                _wait(lambda: len(bot_messages()) == 2, default_worker)
                _wait(lambda: len(receiver.requests) == 2, default_worker)
                assert json.loads(receiver.requests[1]["raw"])["body"] == (
                    "Thanks, we look at order A-77."
                )
                with tenant_context(tenant):
                    run = FlowRun.objects.get(conversation_id=question.conversation_id)
                    assert run.outcome == "completed" and run.version_id == version.pk
                    assert b"A-77" not in bytes(run.variables_ct)
                    log = default_worker.log.read_text()
                    assert "A-77" not in log and "Ada Lovelace" not in log
                    FlowRun.objects.filter(pk=run.pk).delete()
        finally:
            with tenant_context(tenant):
                if flow is not None:
                    FlowRun.objects.filter(version__flow=flow).delete()
                    Flow.objects.filter(pk=flow.pk).update(live_version=None)
                    FlowVersion.objects.filter(flow=flow).delete()
                    Flow.objects.filter(pk=flow.pk).delete()
            receiver.close()
            connection.set_schema_to_public()
