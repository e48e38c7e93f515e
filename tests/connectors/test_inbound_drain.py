"""Draining stored webhook events: many per task, oldest first, none twice, none stranded.

The webhook stores an event and asks for a drain of its tenant: one flag per tenant
(``connectors.models.InboundDrain``) stands for "a drain is queued", raised by the
very INSERT that stores the event, so a busy channel publishes one task per drain
instead of one per event, and pays no round trip for asking
(``connectors.tasks.inbound_drain_request`` for everything but the webhook). The drain (``connectors.inbound.inbound_events_drain``)
claims pending events a batch at a time (``FOR UPDATE SKIP LOCKED``) and applies
each in its own transaction.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest
import redis
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from connectors import inbound, tasks
from connectors.models import Channel, InboundDrain, InboundEvent
from conversations.models import Message
from parley import celery as parley_celery
from tenants.models import Tenant
from tests import support
from tests.connectors.meta.support import signed
from tests.connectors.test_channel_hot_path import _payload
from tests.connectors.test_inbound_events import _meta_channel, _post

PHONE = "106540352242922"  # the phone number id _payload names


def _store(channel, count: int, run: str = "drain") -> list[int]:
    ids = []
    for n in range(count):
        body = _payload(n, run=run)
        response = _post(channel, body, signed(body))
        assert response.status_code == 200, response.content
        ids.append(response.json()["event_id"])
    return ids


@pytest.fixture
def published(monkeypatch):
    """Drain tasks published (recorded, not sent: no worker runs in these tests)."""
    sent = []
    monkeypatch.setattr(tasks, "_enqueue", lambda task, *args: sent.append(task.name) or True)
    return sent


@pytest.mark.django_db
def test_a_drain_applies_every_pending_event_oldest_first_a_batch_at_a_time(acme):
    channel = _meta_channel(acme, "whatsapp", PHONE)
    ids = _store(channel, 5)
    with tenant_context(acme):
        drained = inbound.inbound_events_drain(batch=2)
        assert drained.outcomes == {"processed": 5} and drained.more is False
        events = InboundEvent.objects.filter(pk__in=ids).order_by("id")
        assert [(e.status, e.attempts) for e in events] == [("processed", 1)] * 5
        received = Message.objects.filter(inbox_id_denorm=channel.inbox.pk, direction="in")
        # Oldest first: the messages were stored in the order their events arrived.
        assert list(received.order_by("id").values_list("external_id", flat=True)) == [
            f"wamid.drain.{n}" for n in range(5)
        ]
        assert inbound.inbound_events_drain().outcomes == {}  # nothing left


@pytest.mark.django_db
def test_processing_one_event_by_id_claims_that_event_alone(acme):
    """The relay's per-event task (inbound_event_process) beside pending others: it
    takes its own event only; the others stay pending for a drain, attempts uncounted."""
    channel = _meta_channel(acme, "whatsapp", PHONE)
    ids = _store(channel, 3, run="single")
    with tenant_context(acme):
        assert inbound.inbound_event_process(event_id=ids[1]) == "processed"
        state = [
            (e.status, e.attempts) for e in InboundEvent.objects.filter(pk__in=ids).order_by("id")
        ]
        assert state == [("pending", 0), ("processed", 1), ("pending", 0)]
        assert inbound.inbound_event_process(event_id=ids[1]) == "skipped"


@pytest.mark.django_db
def test_a_drain_out_of_time_hands_over_after_the_event_in_hand(acme):
    """The time budget is checked after each event (one can carry 50 messages), not
    after each claimed batch: the rest of the batch goes back as it was, for the next
    drain, so the reply drains queued meanwhile get their turn on the worker."""
    channel = _meta_channel(acme, "whatsapp", PHONE)
    ids = _store(channel, 4)
    with tenant_context(acme):
        drained = inbound.inbound_events_drain(max_seconds=0)
        assert drained.outcomes == {"processed": 1, "returned": 3} and drained.more is True
        state = [
            (e.status, e.attempts) for e in InboundEvent.objects.filter(pk__in=ids).order_by("id")
        ]
        assert state == [("processed", 1)] + [("pending", 0)] * 3
        assert inbound.inbound_events_drain().outcomes == {"processed": 3}


@pytest.mark.django_db
def test_an_event_that_fails_unexpectedly_waits_with_backoff_and_the_others_go_on(
    acme, monkeypatch
):
    channel = _meta_channel(acme, "whatsapp", PHONE)
    first, poison, last = _store(channel, 3)
    real_apply = inbound.inbound_event_apply
    broken = {"on": True}

    def apply(*, channel, parsed, strict):
        if broken["on"] and parsed.messages[0].external_id == "wamid.drain.1":
            raise RuntimeError("a bug this payload triggers")
        return real_apply(channel=channel, parsed=parsed, strict=strict)

    monkeypatch.setattr(inbound, "inbound_event_apply", apply)
    with tenant_context(acme):
        drained = inbound.inbound_events_drain()
        # The failure ends this drain: the rest of its batch goes back as it was, and
        # the drain says more waits (its task then asks for another drain).
        assert drained.outcomes == {"processed": 1, "retry": 1, "returned": 1}
        assert drained.more is True
        state = {e.pk: (e.status, e.attempts) for e in InboundEvent.objects.all()}
        assert state[first] == ("processed", 1)
        assert state[poison] == ("pending", 1)
        assert state[last] == ("pending", 0)

        # The next drain goes on with the others; the failed one waits its backoff.
        assert inbound.inbound_events_drain().outcomes == {"processed": 1}
        assert InboundEvent.objects.get(pk=poison).status == "pending"

        # Once its backoff has passed (10 s x 1 attempt), it is tried again.
        InboundEvent.objects.filter(pk=poison).update(
            claimed_at=timezone.now() - timedelta(seconds=11)
        )
        broken["on"] = False
        assert inbound.inbound_events_drain().outcomes == {"processed": 1}
        assert InboundEvent.objects.get(pk=poison).attempts == 2


@pytest.mark.django_db
def test_an_event_that_can_never_be_applied_fails_without_stopping_the_drain(acme):
    channel = _meta_channel(acme, "whatsapp", PHONE)
    ids = _store(channel, 3)
    with tenant_context(acme):
        # Its inbox gone: the event cannot be stored (a ValidationError), so it is
        # failed for good; that is no reason to stop.
        InboundEvent.objects.filter(pk=ids[1]).update(
            channel=Channel.objects.create(name="unbound", kind="whatsapp", public_id="unbound")
        )
        drained = inbound.inbound_events_drain()
        assert drained.outcomes == {"processed": 2, "failed": 1} and drained.more is False
        assert InboundEvent.objects.get(pk=ids[1]).status == "failed"


def _flag() -> datetime | None:
    """When the tenant's drain flag was raised (None: down)."""
    return InboundDrain.objects.get(pk=InboundDrain.ROW).requested_at


def _set_flag(when: datetime | None) -> None:
    InboundDrain.objects.filter(pk=InboundDrain.ROW).update(requested_at=when)


@pytest.mark.django_db
def test_drain_requests_publish_one_task_while_one_is_queued(acme, published):
    with tenant_context(acme):
        _set_flag(None)  # down, as the migration leaves it (a committed test may have raised it)
        assert tasks.inbound_drain_request() is True
        assert tasks.inbound_drain_request() is True
        assert published == ["connectors.tasks.inbound_events_drain"]
        assert _flag() is not None

        # The drain lowers the flag before it claims anything: an event stored
        # after that asks for (and gets) a drain of its own.
        tasks.inbound_events_drain.apply().get()
        assert _flag() is None
        assert tasks.inbound_drain_request() is True
        assert len(published) == 2

        # A flag up for longer than a drain can wait stands for a lost task: raised again.
        _set_flag(timezone.now() - timedelta(seconds=tasks.inbound.DRAIN_FLAG_SECONDS + 5))
        assert tasks.inbound_drain_request() is True
        assert len(published) == 3 and timezone.now() - _flag() < timedelta(seconds=5)


@pytest.mark.django_db
def test_the_webhook_raises_the_flag_in_the_insert_that_stores_its_event(acme, published):
    """Down: the first event's own INSERT raises it (no statement more) and that one
    request publishes; the next events find it up and publish nothing; a repeat
    of a pending event asks too, and finds it up."""
    channel = _meta_channel(acme, "whatsapp", PHONE)
    with tenant_context(acme):
        _set_flag(None)
    with CaptureQueriesContext(connection) as queries:
        ids = _store(channel, 3, run="flag")
    drain_statements = [q["sql"] for q in queries.captured_queries if "inbounddrain" in q["sql"]]
    assert len(drain_statements) == 3 and all(
        sql.startswith("WITH") and "INSERT INTO" in sql for sql in drain_statements
    )
    assert published == ["connectors.tasks.inbound_events_drain"]
    body = _payload(0, run="flag")
    repeat = _post(channel, body, signed(body))
    assert repeat.json() == {"ok": True, "event_id": ids[0], "duplicate": True}
    assert published == ["connectors.tasks.inbound_events_drain"]
    with tenant_context(acme):
        assert _flag() is not None
        assert tasks.inbound_events_drain.apply().get()["processed"] == 3


@pytest.mark.django_db
def test_a_webhook_remakes_a_missing_flag_row_and_publishes(acme, published):
    channel = _meta_channel(acme, "whatsapp", PHONE)
    with tenant_context(acme):
        InboundDrain.objects.all().delete()
    (event_id,) = _store(channel, 1, run="remade")
    assert published == ["connectors.tasks.inbound_events_drain"]
    with tenant_context(acme):
        assert _flag() is not None
        assert tasks.inbound_events_drain.apply().get()["processed"] == 1
        assert InboundEvent.objects.get(pk=event_id).status == "processed"


@pytest.mark.django_db
def test_an_event_stored_while_the_flag_is_set_is_seen_by_the_queued_drain(acme, published):
    """The flag set (a drain queued, not started): the webhook publishes nothing, and
    the drain, when it runs, processes the event."""
    channel = _meta_channel(acme, "whatsapp", PHONE)
    with tenant_context(acme):
        _set_flag(timezone.now())
    (event_id,) = _store(channel, 1)
    with tenant_context(acme):
        assert tasks.inbound_drain_request() is True
        assert published == []
        assert tasks.inbound_events_drain.apply().get()["processed"] == 1
        assert InboundEvent.objects.get(pk=event_id).status == "processed"


@pytest.mark.django_db
def test_with_the_broker_down_the_event_is_kept_and_the_flag_goes_down_again(acme, monkeypatch):
    """The webhook raised the flag but cannot publish: it still answers 200, the event
    waits for the relay, and the flag is down again so that the next event tries."""
    # Built like the product's client (``from_url``: no redis-py retries with backoff,
    # which a bare ``redis.Redis(...)`` has and which cost ~4 s here).
    dead = redis.Redis.from_url(
        f"redis://127.0.0.1:{support.free_port()}/0",
        socket_connect_timeout=0.25,
        socket_timeout=0.25,
    )
    monkeypatch.setattr(parley_celery, "_probe", dead)
    channel = _meta_channel(acme, "whatsapp", PHONE)
    with tenant_context(acme):
        _set_flag(None)
    (event_id,) = _store(channel, 1, run="down")
    with tenant_context(acme):
        assert _flag() is None
        assert InboundEvent.objects.get(pk=event_id).status == "pending"
        assert tasks.inbound_drain_request() is False
        assert _flag() is None
        assert inbound.inbound_events_pending(older_than_seconds=0) == [event_id]


@pytest.mark.django_db
def test_hostile_bytes_in_a_stored_event_fail_it_alone(acme):
    """A stored body no adapter can read (it was verified, then the parser changed):
    failed with its code, the drain goes on."""
    channel = _meta_channel(acme, "whatsapp", PHONE)
    good = _store(channel, 2)
    with tenant_context(acme):
        bad, _ = inbound.inbound_event_store(
            channel=Channel.objects.get(pk=channel.pk),
            raw=b'{"object": "whatsapp_business_account", "entry": "\x00\xff"}',
            key=f"sha256:{uuid.uuid4().hex}",
        )
        drained = inbound.inbound_events_drain()
        assert drained.outcomes == {"processed": 2, "failed": 1}
        assert InboundEvent.objects.get(pk=bad.pk).status == "failed"
        assert set(InboundEvent.objects.filter(pk__in=good).values_list("status", flat=True)) == {
            "processed"
        }


@pytest.mark.usefixtures("django_db_setup")
def test_two_drains_at_once_never_claim_the_same_event(acme_committed, django_db_blocker):
    """SKIP LOCKED: claims from two connections at once are disjoint and cover all."""
    channel_id, ids = acme_committed
    claimed: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def claim(slot: int) -> None:
        try:
            with tenant_context(Tenant.objects.get(slug="acme")):
                start.wait()
                while batch := inbound.inbound_events_claim(limit=3):
                    claimed[slot].extend(event.pk for event in batch)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(slot,)) for slot in (0, 1)]
    with django_db_blocker.unblock():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == sorted(ids)
    assert claimed[0] and claimed[1]  # both took part


@pytest.fixture
def acme_committed(django_db_blocker):
    """40 pending events committed on a channel of their own (claimed, never processed),
    removed afterwards."""
    with django_db_blocker.unblock():
        tenant = Tenant.objects.get(slug="acme")
        with tenant_context(tenant):
            channel = Channel.objects.create(
                name="drain race", kind="whatsapp", public_id=uuid.uuid4().hex[:20]
            )
            ids = [
                inbound.inbound_event_store(channel=channel, raw=b"{}", key=f"race:{n}")[0].pk
                for n in range(40)
            ]
        connection.set_schema_to_public()
        try:
            yield channel.pk, ids
        finally:
            with tenant_context(tenant):
                InboundEvent.objects.filter(channel_id=channel.pk).delete()
                Channel.objects.filter(pk=channel.pk).delete()
            connection.set_schema_to_public()
