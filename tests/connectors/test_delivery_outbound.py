"""Channel delivery over parley.outbound's protections: every network attempt
recorded on the message (never a body or a token), the channel's rate limit and
the destination's circuit breaker holding a send back without spending one of
the message's attempts, their retry_after as the retry's countdown."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from connectors import delivery, tasks
from connectors.adapters import registry
from connectors.adapters.base import DeliveryError
from connectors.adapters.http import HttpTransportError, outbound_http
from connectors.channels import MAX_ATTEMPTS
from connectors.tasks import HELD_BACK_RETRIES, message_deliver
from conversations.models import Message
from parley import outbound
from tests.connectors.meta.support import TOKEN
from tests.connectors.whatsapp_flow import (
    REPLY,
    agent_replies,
    customer_text,
    received_in_process,
    whatsapp_channel,
)
from tests.fakes.graph import FakeGraph


@pytest.fixture
def graph():
    with FakeGraph(token=TOKEN) as server:
        yield server


def _queued_reply(acme, graph):
    channel = whatsapp_channel(acme, graph.base_url)
    inbound = received_in_process(acme, channel, customer_text())
    return channel, agent_replies(acme, channel, inbound)


def _reply(acme, reply_id) -> Message:
    with tenant_context(acme):
        message = Message.objects.get(pk=reply_id)
    connection.set_schema_to_public()
    return message


@pytest.mark.django_db
def test_each_network_attempt_is_recorded_on_the_message_without_body_or_token(acme, graph):
    channel, reply = _queued_reply(acme, graph)
    graph.fail("server_error")
    with tenant_context(acme):
        with pytest.raises(delivery.TransientDeliveryError) as caught:
            delivery.delivery_attempt(message_id=reply.pk)
        assert caught.value.counted
        assert delivery.delivery_attempt(message_id=reply.pk) == "sent"
    reply = _reply(acme, reply.pk)
    assert reply.delivery == "sent" and reply.delivery_attempts == 2
    first, second = reply.delivery_log
    assert first["attempt"] == 1 and first["status"] == 500 and first["network"] is True
    assert first["error"] == "OutboundError" and isinstance(first["ms"], int)
    assert second["attempt"] == 2 and second["status"] == 200 and second["error"] is None
    assert set(first) == {"attempt", "at", "status", "error", "ms", "network"}
    stored = json.dumps(reply.delivery_log)
    assert TOKEN not in stored and REPLY not in stored and "Bearer" not in stored
    assert len(graph.requests) == 2


@pytest.mark.django_db
def test_a_spent_channel_rate_holds_the_send_back_without_spending_an_attempt(
    acme, graph, monkeypatch
):
    channel, reply = _queued_reply(acme, graph)
    # A rate of one send per 100 s: the bucket starts with 0.01 of a token.
    monkeypatch.setattr(type(registry.get("whatsapp")), "RATE_PER_SECOND", 0.01)
    with tenant_context(acme), pytest.raises(delivery.TransientDeliveryError) as caught:
        delivery.delivery_attempt(message_id=reply.pk)
    assert not caught.value.counted
    assert caught.value.countdown >= 99  # the limiter's retry_after, not the 10 s backoff
    assert graph.requests == []
    reply = _reply(acme, reply.pk)
    assert reply.delivery == "queued" and reply.delivery_attempts == 0
    assert reply.delivery_next_at is not None
    assert reply.delivery_log[-1]["network"] is False
    assert reply.delivery_log[-1]["error"] == "held_back"


@pytest.mark.django_db
def test_the_rate_key_is_per_tenant_and_channel(acme, graph):
    channel, _ = _queued_reply(acme, graph)
    with tenant_context(acme):
        key = delivery.rate_key(channel)
    assert key == f"channel:{acme.schema_name}:{channel.pk}"


@pytest.mark.django_db
def test_an_open_circuit_holds_the_send_back_for_its_cool_down(acme, graph):
    channel, reply = _queued_reply(acme, graph)
    shared = outbound._shared()
    destination = outbound.destination_of(graph.base_url)
    try:
        for _ in range(settings.PARLEY_OUTBOUND_BREAKER_FAILURES):
            shared.breaker.record(destination, failed=True, now=time.time())
        with tenant_context(acme):
            for _ in range(MAX_ATTEMPTS + 1):  # never spends the message's attempts
                with pytest.raises(delivery.TransientDeliveryError) as caught:
                    delivery.delivery_attempt(message_id=reply.pk)
                assert not caught.value.counted
    finally:
        shared.client.delete(shared.breaker.key(destination))
    cool_down = settings.PARLEY_OUTBOUND_BREAKER_RESET_SECONDS
    assert cool_down - 2 <= caught.value.countdown <= cool_down + 3
    assert graph.requests == []
    reply = _reply(acme, reply.pk)
    assert reply.delivery == "queued" and reply.delivery_attempts == 0
    # Closed again: the next attempt goes out and counts.
    with tenant_context(acme):
        assert delivery.delivery_attempt(message_id=reply.pk) == "sent"
    assert _reply(acme, reply.pk).delivery_attempts == 1 and len(graph.requests) == 1


@pytest.mark.django_db
def test_a_send_held_back_past_the_task_budget_fails_clearly(acme, graph, monkeypatch):
    channel, reply = _queued_reply(acme, graph)
    monkeypatch.setattr(type(registry.get("whatsapp")), "RATE_PER_SECOND", 0.01)
    with tenant_context(acme):
        result = message_deliver.apply(args=(reply.pk,), retries=HELD_BACK_RETRIES).get()
    assert result["delivery"] == "failed"
    reply = _reply(acme, reply.pk)
    assert reply.delivery == "failed" and "held back" in reply.delivery_error
    assert graph.requests == []


def test_outbound_http_turns_local_refusals_into_unattempted_transport_errors(graph):
    shared = outbound._shared()
    destination = outbound.destination_of(graph.base_url)
    call = {
        "json_body": {},
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "timeout": 2.0,
        "purpose": "test",
    }
    url = f"{graph.base_url}/v21.0/1/messages"
    with pytest.raises(HttpTransportError) as caught:
        outbound_http("POST", url, rate_key="test:held", rate_per_second=0.01, **call)
    assert caught.value.transient and not caught.value.attempted
    assert caught.value.retry_after > 90
    try:
        for _ in range(settings.PARLEY_OUTBOUND_BREAKER_FAILURES):
            shared.breaker.record(destination, failed=True, now=time.time())
        with pytest.raises(HttpTransportError) as caught:
            outbound_http("POST", url, **call)
        assert not caught.value.attempted and caught.value.retry_after > 0
    finally:
        shared.client.delete(shared.breaker.key(destination))
    assert graph.requests == []
    # A network failure was attempted.
    graph.stop()
    with pytest.raises(HttpTransportError) as caught:
        outbound_http("POST", url, **call)
    assert caught.value.attempted and caught.value.transient


def _held_back(*args, **kwargs):
    raise HttpTransportError("rate limit reached", retry_after=3.5, attempted=False)


def _unreachable(*args, **kwargs):
    raise HttpTransportError("ConnectionRefusedError calling …", retry_after=None)


@pytest.mark.parametrize("kind", ["whatsapp", "api"])
def test_adapters_pass_a_held_back_send_on_as_transient_with_its_retry_after(kind):
    adapter = registry.get(kind)
    message = adapter.outbound(
        recipient_id="16505551234",
        message_id=1,
        conversation_id=1,
        body="hello",
        attachments=(),
        created_at="2026-01-01T00:00:00+00:00",
        attempt=1,
    )
    if kind == "whatsapp":
        settings_, secrets = {"phone_number_id": "106540352242922"}, {"access_token": TOKEN}
    else:
        settings_, secrets = (
            {"outbound_url": "https://integration.example/r"},
            {"signing_secret": "s" * 32},
        )
    with pytest.raises(DeliveryError) as held:
        adapter.send(message, settings_, secrets, _held_back)
    assert not held.value.permanent and held.value.code == "held_back"
    assert held.value.retry_after == 3.5
    with pytest.raises(DeliveryError) as failed:
        adapter.send(message, settings_, secrets, _unreachable)
    assert not failed.value.permanent and failed.value.code == "network_error"


@pytest.mark.django_db
def test_the_beat_leaves_a_held_back_send_to_its_scheduled_retry(acme, graph, monkeypatch):
    channel, reply = _queued_reply(acme, graph)
    monkeypatch.setattr(type(registry.get("whatsapp")), "RATE_PER_SECOND", 0.01)
    resumed = []
    monkeypatch.setattr(message_deliver, "delay", lambda message_id: resumed.append(message_id))
    with tenant_context(acme):
        with pytest.raises(delivery.TransientDeliveryError):
            delivery.delivery_attempt(message_id=reply.pk)
        old = timezone.now() - timedelta(minutes=10)
        Message.objects.filter(pk=reply.pk).update(created_at=old)
        # Queued, no attempt counted, but its retry is scheduled: not enqueued again.
        assert tasks.deliveries_resume() == 0 and resumed == []
        # The scheduled retry is long overdue (its task was lost): resumed.
        Message.objects.filter(pk=reply.pk).update(delivery_next_at=old)
        assert tasks.deliveries_resume() == 1 and resumed == [reply.pk]
