"""One task sends an inbox's queued replies (``connectors.tasks.message_drain``).

Real Redis (the drain queue, its flag, the per-message lease, the rate limit and
circuit breaker) and the real database; the local Graph API answers. What must hold
for each message of a drain is what holds for a message sent alone: its attempt
counted before it leaves, its own retry on a transient failure without holding the
others back, and never two sends of it at once.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from connectors import delivery, tasks
from conversations.models import Message
from tests.connectors.meta.support import TOKEN
from tests.connectors.whatsapp_flow import (
    agent_replies,
    customer_text,
    received_in_process,
    whatsapp_channel,
)
from tests.fakes.graph import FakeGraph

pytestmark = pytest.mark.django_db


@pytest.fixture
def graph():
    with FakeGraph(token=TOKEN) as server:
        yield server


@pytest.fixture
def scheduled(monkeypatch):
    """What the drain hands to ``message_deliver`` (not published to the broker)."""
    calls = []
    monkeypatch.setattr(
        tasks.message_deliver,
        "apply_async",
        lambda args, countdown, **options: calls.append((args[0], countdown)),
    )
    return calls


def _three_replies(acme, graph):
    channel = whatsapp_channel(acme, graph.base_url)
    inbound = received_in_process(acme, channel, customer_text())
    replies = [agent_replies(acme, channel, inbound, body=f"Reply {n}") for n in range(3)]
    inbox_id = replies[0].inbox_id_denorm
    with tenant_context(acme):
        for reply in replies:
            delivery.drain_push(inbox_id=inbox_id, message_id=reply.pk)
    connection.set_schema_to_public()
    return inbox_id, [r.pk for r in replies]


def _rows(acme, ids) -> list[Message]:
    with tenant_context(acme):
        rows = list(Message.objects.filter(pk__in=ids).order_by("pk"))
    connection.set_schema_to_public()
    return rows


def test_a_transient_failure_of_one_reply_retries_it_and_sends_the_others(acme, graph, scheduled):
    inbox_id, ids = _three_replies(acme, graph)
    graph.fail("server_error")  # the first request: the first reply's

    with tenant_context(acme):
        result = tasks.message_drain.apply(args=(inbox_id,)).get()

    assert result["sent"] == 2 and result["retry"] == 1
    first, second, third = _rows(acme, ids)
    assert (second.delivery, third.delivery) == ("sent", "sent")
    assert (first.delivery, first.delivery_attempts) == ("queued", 1)
    assert first.delivery_next_at is not None and first.delivery_log[0]["status"] == 500
    ((retried, countdown),) = scheduled
    assert retried == first.pk and countdown >= 10
    assert len(graph.requests) == 3

    # The retry, when it runs, is an attempt like any other: the second.
    with tenant_context(acme):
        assert tasks.message_deliver.apply(args=(first.pk,)).get()["delivery"] == "sent"
    first = _rows(acme, [first.pk])[0]
    assert (first.delivery, first.delivery_attempts) == ("sent", 2)
    assert len(graph.requests) == 4


def test_a_drain_reads_the_channel_once_for_all_its_replies(
    acme, graph, scheduled, django_capture_on_commit_callbacks
):
    channel = whatsapp_channel(acme, graph.base_url)
    inbound = received_in_process(acme, channel, customer_text())

    def drain_three() -> dict:
        replies = [agent_replies(acme, channel, inbound, body=f"Reply {n}") for n in range(3)]
        with tenant_context(acme):
            for reply in replies:
                delivery.drain_push(inbox_id=reply.inbox_id_denorm, message_id=reply.pk)
            # As a real commit would: the decrypted token is kept for reuse.
            inbox_id = replies[0].inbox_id_denorm
            with (
                django_capture_on_commit_callbacks(execute=True),
                CaptureQueriesContext(connection) as queries,
            ):
                result = tasks.message_drain.apply(args=(inbox_id,)).get()
        connection.set_schema_to_public()
        # (django-tenants' SET search_path after the schema switch is not the drain's)
        ours = [q for q in queries.captured_queries if not q["sql"].startswith("SET search_path")]
        return {"sent": result["sent"], "queries": len(ours)}

    drain_three()  # warm: the access token decrypted once
    # The replies' rows and the channel's credentials once, then per reply its claim
    # and its "sent" (a message_deliver per reply: 4 each, see test_channel_hot_path).
    assert drain_three() == {"sent": 3, "queries": 2 + 2 * 3}
    assert scheduled == []


def test_two_drains_at_once_never_send_a_reply_twice(acme, graph, scheduled, monkeypatch):
    """A drain run again under its own id (its worker was thought dead) while the first
    still runs: both hold the same ids; the lease and the claim keep each send single."""
    inbox_id, ids = _three_replies(acme, graph)
    drain_id = uuid.uuid4().hex
    claim = delivery._claim
    second: list[delivery.Drained] = []
    started = []

    def claim_with_a_second_drain(message_id, contact_id, channel):
        if not started:  # the first drain holds the first reply's lease here
            started.append(message_id)
            second.append(delivery.deliveries_drain(inbox_id=inbox_id, drain_id=drain_id))
        return claim(message_id, contact_id, channel)

    monkeypatch.setattr(delivery, "_claim", claim_with_a_second_drain)
    with tenant_context(acme):
        first = delivery.deliveries_drain(inbox_id=inbox_id, drain_id=drain_id)

    (other,) = second
    # The second drain found the first reply's lease taken and sent the other two.
    assert other.outcomes == {"busy": 1, "sent": 2}
    assert other.retries == [(ids[0], delivery.LEASE_SECONDS)]
    # The first sent the first reply and found the other two already sent.
    assert first.outcomes == {"sent": 1, "skipped": 2}
    rows = _rows(acme, ids)
    assert [r.delivery for r in rows] == ["sent"] * 3
    assert [r.delivery_attempts for r in rows] == [1, 1, 1]
    assert started == [ids[0]]
    assert len(graph.requests) == 3


def test_replies_enqueue_one_drain_until_it_takes_them(acme, graph, monkeypatch):
    channel = whatsapp_channel(acme, graph.base_url)
    inbound = received_in_process(acme, channel, customer_text())
    replies = [agent_replies(acme, channel, inbound, body=f"Reply {n}") for n in range(3)]
    inbox_id = replies[0].inbox_id_denorm
    drains, singles = [], []
    monkeypatch.setattr(tasks.message_drain, "delay", lambda *a: drains.append(a))
    monkeypatch.setattr(tasks.message_deliver, "delay", lambda *a: singles.append(a))

    with tenant_context(acme):
        for reply in replies[:2]:
            tasks.on_reply_queued(message_id=reply.pk, schema=acme.schema_name, inbox_id=inbox_id)
        assert drains == [(inbox_id,)]  # the second found a drain pending
        # The drain lowers the flag before it takes the ids: a reply queued after
        # that enqueues the next drain, so none waits behind a drain that has run.
        result = tasks.message_drain.apply(args=(inbox_id,)).get()
        assert result["sent"] == 2
        tasks.on_reply_queued(message_id=replies[2].pk, schema=acme.schema_name, inbox_id=inbox_id)
        assert drains == [(inbox_id,), (inbox_id,)]
        assert tasks.message_drain.apply(args=(inbox_id,)).get()["sent"] == 1
    assert singles == []
    assert len(graph.requests) == 3


def test_without_redis_for_the_queue_a_reply_gets_its_own_task(acme, graph, monkeypatch):
    channel = whatsapp_channel(acme, graph.base_url)
    inbound = received_in_process(acme, channel, customer_text())
    reply = agent_replies(acme, channel, inbound)
    singles = []
    monkeypatch.setattr(tasks.message_deliver, "delay", lambda *a: singles.append(a))
    # A Redis nobody listens on: the queue's script fails, the broker still answers.
    # Built like the product's client (``from_url``: no redis-py retries with backoff,
    # which a bare ``redis.Redis(...)`` has and which cost ~3 s here).
    dead = redis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    monkeypatch.setattr(delivery, "redis_client", lambda: dead)
    with tenant_context(acme):
        tasks.on_reply_queued(
            message_id=reply.pk, schema=acme.schema_name, inbox_id=reply.inbox_id_denorm
        )
    assert singles == [(reply.pk,)]


def test_a_drain_held_back_by_the_rate_limit_waits_as_one_drain_not_a_task_per_reply(
    acme, graph, scheduled, monkeypatch
):
    """The channel's budget spent: the reply held back and those after it go back to
    the head of the queue, in order, with no attempt counted, and one drain is
    scheduled after the pause (not a message_deliver each, which is what made a
    burst crawl at the channel's rate)."""
    inbox_id, ids = _three_replies(acme, graph)
    bucket = f"drain-test:{uuid.uuid4().hex}"
    monkeypatch.setattr(delivery, "rate_key", lambda channel: bucket)
    monkeypatch.setattr(delivery, "channel_rate", lambda channel: 1.0)  # a bucket of one
    drains = []
    monkeypatch.setattr(
        tasks.message_drain,
        "apply_async",
        lambda args, countdown, **options: drains.append((args[0], countdown)),
    )

    with tenant_context(acme):
        result = tasks.message_drain.apply(args=(inbox_id,)).get()
        queue, flag = delivery._drain_keys(inbox_id)
        client = delivery.redis_client()
        queued = [int(raw) for raw in client.lrange(queue, 0, -1)]
        flag_up = client.exists(flag)

    assert result == {"schema": acme.schema_name, "inbox": inbox_id, "sent": 1, "held_back": 2}
    assert scheduled == []  # no task per reply
    assert queued == ids[1:]  # at the head, in order
    assert flag_up  # replies queued meanwhile wait for the scheduled drain
    ((drained_inbox, countdown),) = drains
    assert drained_inbox == inbox_id
    assert delivery.HELD_BACK_PAUSE_SECONDS <= countdown <= 1.0
    first, second, third = _rows(acme, ids)
    assert first.delivery == "sent"
    assert (second.delivery, second.delivery_attempts) == ("queued", 0)
    assert (third.delivery, third.delivery_attempts) == ("queued", 0)
    assert len(graph.requests) == 1

    # The scheduled drain, once the bucket has a token again, sends the next one.
    monkeypatch.setattr(delivery, "channel_rate", lambda channel: 1000.0)
    with tenant_context(acme):
        assert tasks.message_drain.apply(args=(inbox_id,)).get()["sent"] == 2
    assert [r.delivery for r in _rows(acme, ids)] == ["sent"] * 3
    assert [r.delivery_attempts for r in _rows(acme, ids)] == [1, 1, 1]


def test_a_held_back_drain_without_redis_to_requeue_gives_each_reply_its_retry(
    acme, graph, scheduled, monkeypatch
):
    inbox_id, ids = _three_replies(acme, graph)
    bucket = f"drain-test:{uuid.uuid4().hex}"
    monkeypatch.setattr(delivery, "rate_key", lambda channel: bucket)
    monkeypatch.setattr(delivery, "channel_rate", lambda channel: 1.0)

    def refused(*args, **kwargs):
        return False

    monkeypatch.setattr(delivery, "_drain_requeue", refused)
    with tenant_context(acme):
        result = tasks.message_drain.apply(args=(inbox_id,)).get()
    assert result["sent"] == 1 and result["retry"] == 2
    assert [message_id for message_id, _ in scheduled] == ids[1:]
    assert [r.delivery_attempts for r in _rows(acme, ids)] == [1, 0, 0]


def test_a_drain_takes_batch_after_batch_until_its_time_is_up(acme, graph, scheduled):
    inbox_id, ids = _three_replies(acme, graph)
    with tenant_context(acme):
        out_of_time = delivery.deliveries_drain(
            inbox_id=inbox_id, drain_id=uuid.uuid4().hex, limit=2, max_seconds=0
        )
        # One batch, then it hands over: the task enqueues the next drain.
        assert out_of_time.outcomes == {"sent": 2} and out_of_time.more is True
        rest = delivery.deliveries_drain(inbox_id=inbox_id, drain_id=uuid.uuid4().hex, limit=2)
        assert rest.outcomes == {"sent": 1} and rest.more is False
    assert [r.delivery for r in _rows(acme, ids)] == ["sent"] * 3

    inbox_id, ids = _three_replies(acme, graph)
    with tenant_context(acme):
        # Time to spare: batch after batch in one drain.
        whole = delivery.deliveries_drain(inbox_id=inbox_id, drain_id=uuid.uuid4().hex, limit=2)
        assert whole.outcomes == {"sent": 3} and whole.more is False
