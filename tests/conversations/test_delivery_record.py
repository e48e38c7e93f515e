"""What the channel layer records on an outgoing message: its delivery status and its
attempt log (``message_delivery_update``, ``message_delivery_log``).

Both are single UPDATEs in the usual case (the log is appended and trimmed in SQL);
these tests pin what the statements must keep doing: a status only moves forward,
the channel's id is kept once, the log holds the newest ``DELIVERY_LOG_MAX``
entries with only the known keys, and nothing but an outgoing message is touched.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from connectors import services as connector_services
from connectors.models import Channel
from conversations import events, services
from conversations.models import Inbox, Message

pytestmark = pytest.mark.django_db


def _entry(n: int, **extra) -> dict:
    return {
        "attempt": n,
        "at": f"2026-01-01T00:00:{n:02d}",
        "status": 500,
        "error": "OutboundError",
        "ms": n,
        "network": True,
        **extra,
    }


@pytest.fixture
def out(acme):
    with tenant_context(acme):
        secret = connector_services.credential_set(
            name="records-secret", kind="webhook_secret", connector="api-channel", secret="s" * 32
        )
        channel = Channel.objects.create(
            name="records", public_id="pub-records", signing_credential=secret
        )
        inbox = Inbox.objects.create(name="Records", channel=channel)
        incoming, _ = services.message_receive(
            inbox=inbox, contact_external_id="rec-1", body="hi", external_id="rec-in-1"
        )
        message = Message.objects.create(
            conversation_id=incoming.conversation_id,
            inbox_id_denorm=inbox.pk,
            direction=Message.Direction.OUT,
            sender=Message.Sender.BOT,
            delivery=Message.Delivery.QUEUED,
            delivery_next_at=timezone.now(),
            created_at=timezone.now(),
        )
        yield message, incoming


@pytest.fixture
def announced():
    seen = []

    def receiver(**kwargs):
        seen.append((kwargs["message_id"], kwargs["delivery"]))

    events.delivery_updated.connect(receiver, weak=False)
    yield seen
    events.delivery_updated.disconnect(receiver)


def test_sent_with_its_log_is_one_statement_and_announced(
    out, announced, django_capture_on_commit_callbacks
):
    message, _ = out
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.message_delivery_update(
            message=message, status="sent", external_id="wamid.1", log=[_entry(1)]
        )
    assert len(queries.captured_queries) == 1
    assert announced == [(message.pk, "sent")]
    row = Message.objects.get(pk=message.pk)
    assert (row.delivery, row.external_id, row.delivery_next_at) == ("sent", "wamid.1", None)
    assert row.delivery_log == [_entry(1)]


def test_a_late_sent_keeps_a_later_status_but_records_the_id_and_the_attempt(
    out, announced, django_capture_on_commit_callbacks
):
    message, _ = out
    with django_capture_on_commit_callbacks(execute=True):
        services.message_delivery_update(message=message, status="delivered")
        services.message_delivery_update(
            message=message, status="sent", external_id="wamid.2", log=[_entry(1)]
        )
    row = Message.objects.get(pk=message.pk)
    assert row.delivery == "delivered"
    assert row.external_id == "wamid.2"
    assert row.delivery_log == [_entry(1)]
    assert announced == [(message.pk, "delivered")]  # the late "sent" changed no status


def test_the_channel_s_id_is_kept_once(out):
    message, _ = out
    services.message_delivery_update(message=message, status="sent", external_id="wamid.first")
    services.message_delivery_update(message=message, status="read", external_id="wamid.other")
    row = Message.objects.get(pk=message.pk)
    assert (row.delivery, row.external_id) == ("read", "wamid.first")


def test_failed_from_any_status_with_its_error_cut(out):
    message, _ = out
    services.message_delivery_update(message=message, status="failed", error="x" * 400)
    row = Message.objects.get(pk=message.pk)
    assert row.delivery == "failed" and row.delivery_error == "x" * 300
    assert row.delivery_next_at is not None  # a failure leaves the schedule alone
    services.message_delivery_update(message=message, status="read")
    services.message_delivery_update(message=message, status="failed", error="late")
    row = Message.objects.get(pk=message.pk)
    assert (row.delivery, row.delivery_error) == ("failed", "late")


def test_an_incoming_message_or_an_unknown_status_is_refused(out):
    message, incoming = out
    with pytest.raises(ValidationError):
        services.message_delivery_update(message=incoming, status="sent")
    with pytest.raises(ValidationError):
        services.message_delivery_update(message=message, status="bounced")
    assert Message.objects.get(pk=incoming.pk).delivery == ""
    services.message_delivery_log(message_id=incoming.pk, entry=_entry(1))
    assert Message.objects.get(pk=incoming.pk).delivery_log == []


def test_the_log_keeps_the_newest_entries_in_order(out):
    message, _ = out
    total = services.DELIVERY_LOG_MAX + 5
    for n in range(1, total):
        services.message_delivery_log(message_id=message.pk, entry=_entry(n))
    services.message_delivery_update(message=message, status="sent", log=[_entry(total)])
    log = Message.objects.get(pk=message.pk).delivery_log
    assert [e["attempt"] for e in log] == list(range(6, total + 1))


def test_the_log_keeps_only_known_keys_and_types(out):
    message, _ = out
    Message.objects.filter(pk=message.pk).update(delivery_log={"not": "a list"})
    services.message_delivery_log(
        message_id=message.pk,
        entry=_entry(1, body="the customer's text", error="E" * 100, status=True, ms="3"),
    )
    (entry,) = Message.objects.get(pk=message.pk).delivery_log
    assert "body" not in entry
    assert entry["error"] == "E" * 64
    assert entry["status"] is None and entry["ms"] is None
