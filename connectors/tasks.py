"""Connector tasks: credential reminders, reply delivery, the inbound event relay and purge."""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import DatabaseError, connection
from django.db.models import Q
from django.utils import timezone

from accounts.policy import POLICY, Perm
from connectors import delivery, inbound
from connectors.selectors import credentials_due
from conversations.models import Message
from parley.celery import broker_reachable, tenant_task
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# Task retries allowed for sends held back without a request (each waits the
# refusal's retry_after: a rate limit's fraction of a second, a circuit's cool-down).
HELD_BACK_RETRIES = 100


@tenant_task()
def credential_rotation_reminders() -> dict:
    """E-mail the people who manage credentials about those due within 14 days (once a day)."""
    now = timezone.now()
    due = list(
        credentials_due().filter(
            Q(reminded_at__isnull=True) | Q(reminded_at__lt=now - timedelta(hours=23))
        )
    )
    if not due:
        return {"schema": connection.schema_name, "reminded": 0}
    roles = [role for role, perms in POLICY.items() if Perm.CONNECTORS_MANAGE in perms]
    recipients = list(
        get_user_model()
        .objects.filter(is_active=True, role__in=roles)
        .values_list("email", flat=True)
    )
    lines = [
        f"- {c.name} ({c.get_kind_display()}, {c.connector}): "
        + ("overdue since " if c.rotation_due_at <= now else "due ")
        + f"{c.rotation_due_at:%Y-%m-%d}"
        for c in due
    ]
    if recipients:
        send_mail(
            subject=f"Parley: {len(due)} credential(s) to rotate",
            message="These connector credentials are due for rotation:\n\n"
            + "\n".join(lines)
            + "\n\nReplace each secret on the Credentials page of your workspace.",
            from_email=None,
            recipient_list=recipients,
        )
    type(due[0]).objects.filter(pk__in=[c.pk for c in due]).update(reminded_at=now)
    return {"schema": connection.schema_name, "reminded": len(due), "recipients": len(recipients)}


# Fire and forget (no caller reads a result): ignore_result spares the result
# backend a write per task (two Redis round trips per message on the reply path).
@tenant_task(bind=True, acks_late=True, ignore_result=True, max_retries=HELD_BACK_RETRIES + 10)
def message_deliver(self, message_id: int) -> dict:
    """Send one outbound message through its inbox's channel (enqueued when
    ``conversations`` announces ``reply_queued``); retried with backoff on transient
    failures, ``failed`` after ``connectors.channels.MAX_ATTEMPTS`` attempts."""
    try:
        outcome = delivery.delivery_attempt(message_id=message_id)
    except delivery.TransientDeliveryError as exc:
        # The attempt count lives on the message (not in the task), so a
        # redelivered task cannot exceed MAX_ATTEMPTS; max_retries is a backstop.
        if exc.counted:
            raise self.retry(exc=exc, countdown=exc.countdown) from None
        # Held back by Parley's own rate limit or circuit (no request made): not
        # an attempt, so a longer budget of task retries, and then a clear failure
        # rather than a message left queued for ever.
        if self.request.retries >= HELD_BACK_RETRIES:
            delivery.delivery_fail(
                message_id=message_id,
                error="Not sent: the channel stayed held back (rate limit or circuit breaker).",
                attempts=exc.attempts,
            )
            return {"schema": connection.schema_name, "message": message_id, "delivery": "failed"}
        raise self.retry(exc=exc, countdown=exc.countdown) from None
    if outcome == "busy":
        # Another worker holds the lease (or died holding it): look again once it has lapsed.
        raise self.retry(countdown=delivery.LEASE_SECONDS)
    return {"schema": connection.schema_name, "message": message_id, "delivery": outcome}


def _enqueue(task, *args) -> bool:
    """Publish; False when the broker is down (a beat relay sends it later). Never
    raises: this runs after commit, where the work is already safely stored."""
    if not broker_reachable():
        logger.warning("could not enqueue %s: broker unreachable", task.name)
        return False
    try:
        task.delay(*args)
    except Exception as exc:  # noqa: BLE001 - any broker failure; the relays cover it
        logger.warning("could not enqueue %s: %s", task.name, type(exc).__name__)
        return False
    return True


@tenant_task(bind=True, acks_late=True, ignore_result=True, max_retries=5)
def message_drain(self, inbox_id: int) -> dict:
    """Send the replies queued for one inbox (``connectors.delivery.deliveries_drain``):
    the channel, its credentials and this task's own cost paid once for up to
    ``DRAIN_BATCH`` replies. A reply that needs another try goes to ``message_deliver``
    (its own retry schedule, as if it had been sent alone); more replies left, the
    next drain is enqueued."""
    try:
        drain_id = str(self.request.id or uuid.uuid4().hex)  # run directly: no task id
        drained = delivery.deliveries_drain(inbox_id=inbox_id, drain_id=drain_id)
    except Exception as exc:
        # Nothing was claimed yet (see deliveries_drain): the retry takes the same ids.
        raise self.retry(exc=exc, countdown=10 * (self.request.retries + 1)) from None
    # On the queue this drain came from, as a task's own retry would be.
    queue = (self.request.delivery_info or {}).get("routing_key")
    options = {"queue": queue} if queue else {}
    for message_id, countdown in drained.retries:
        try:
            message_deliver.apply_async((message_id,), countdown=countdown, **options)
        except Exception as exc:  # noqa: BLE001 - deliveries_resume is the backstop
            logger.warning(
                "could not schedule the delivery of %s: %s", message_id, type(exc).__name__
            )
    if drained.resume:
        # Held back by the channel's rate limit: the ids wait in the queue (the
        # flag is up) for this one drain after the pause, whatever arrives meanwhile.
        try:
            message_drain.apply_async((inbox_id,), countdown=drained.resume_after, **options)
        except Exception as exc:  # noqa: BLE001 - deliveries_resume is the backstop
            logger.warning(
                "could not schedule the drain of inbox %s: %s", inbox_id, type(exc).__name__
            )
            delivery.drain_release(inbox_id=inbox_id)
    elif drained.more:
        _drain_enqueue(inbox_id)
    return {"schema": connection.schema_name, "inbox": inbox_id, **drained.outcomes}


def _drain_enqueue(inbox_id: int) -> None:
    """Enqueue an inbox's drain unless one is pending (its flag up)."""
    # Redis failed (None): the ids stay queued; deliveries_resume sends them.
    if delivery.drain_flag_raise(inbox_id=inbox_id) and not _enqueue(message_drain, inbox_id):
        delivery.drain_release(inbox_id=inbox_id)


def on_reply_queued(
    *, message_id: int, schema: str, inbox_id: int | None = None, **_: object
) -> None:
    """Subscriber of ``conversations.events.reply_queued`` (connected in ConnectorsConfig.ready).

    The reply joins its inbox's drain queue (``connectors.delivery.drain_push``); the
    first reply queued while no drain is pending enqueues ``message_drain``. Redis
    unusable for that: the reply gets a ``message_deliver`` task of its own."""
    if connection.schema_name != schema:
        # Announced after commit in the schema the reply was written in; never cross tenants.
        logger.error(
            "reply_queued for schema %s seen in %s: ignored", schema, connection.schema_name
        )
        return
    if not broker_reachable():
        # Nothing can be enqueued; deliveries_resume sends it once Redis is back.
        logger.warning("could not enqueue the delivery of %s: broker unreachable", message_id)
        return
    pushed = (
        None
        if inbox_id is None
        else delivery.drain_push(inbox_id=int(inbox_id), message_id=message_id)
    )
    if pushed is None:
        _enqueue(message_deliver, message_id)
    elif pushed and not _enqueue(message_drain, int(inbox_id)):
        # The flag would hold back the next replies' drains until it lapses.
        delivery.drain_release(inbox_id=int(inbox_id))


@tenant_task()
def deliveries_resume(older_than_seconds: int = 120) -> int:
    """Beat: replies still queued and never attempted (their enqueue was lost, e.g.
    the broker or Redis was down at commit, a drain task or the drain queue was
    lost, or a held-back send's scheduled retry was lost) are handed to
    ``message_deliver`` again. The per-message lease and the claim in
    ``connectors.delivery`` keep a send single, also against a drain holding the id."""
    stale = Message.objects.filter(
        direction=Message.Direction.OUT,
        kind=Message.Kind.MESSAGE,
        delivery=Message.Delivery.QUEUED,
        delivery_attempts=0,
        created_at__lt=timezone.now() - timedelta(seconds=older_than_seconds),
    ).filter(
        # A send held back by the rate limit or circuit (no attempt counted) has
        # its retry scheduled: enqueueing it again would start a second retry
        # chain per beat. Only a schedule long overdue (its task lost) is resumed.
        Q(delivery_next_at__isnull=True)
        | Q(delivery_next_at__lt=timezone.now() - timedelta(seconds=older_than_seconds))
    )
    # A PULL kind's replies stay queued until the recipient fetches them: not lost.
    stale = stale.exclude(conversation__inbox__channel__kind__in=delivery.pull_kinds())
    stale = stale.values_list("id", flat=True)[:500]
    ids = list(stale)
    for message_id in ids:
        message_deliver.delay(message_id)
    return len(ids)


# --- inbound events ---------------------------------------------------------------------------------


@tenant_task(bind=True, acks_late=True, ignore_result=True, max_retries=5)
def inbound_event_process(self, event_id: int) -> dict:
    """Process one stored webhook event (``connectors.inbound``) in this tenant."""
    try:
        outcome = inbound.inbound_event_process(event_id=event_id)
    except Exception as exc:
        # Left pending by inbound_event_process: retry soon; the relay is the backstop.
        raise self.retry(exc=exc, countdown=10 * (self.request.retries + 1)) from None
    return {"schema": connection.schema_name, "event": event_id, "outcome": outcome}


def inbound_event_enqueue(event_id: int) -> bool:
    return _enqueue(inbound_event_process, event_id)


def inbound_drain_request() -> bool:
    """After a commit that stored events: make sure one drain of this tenant's pending
    events is queued (``inbound_events_drain``). False when it could not be (the broker
    or the database down: the relay enqueues later); never raises, the events are
    already stored.

    The tenant's drain flag (``connectors.models.InboundDrain``) stands for "a drain
    is queued": a request that finds it up publishes nothing, because the drain
    lowers the flag *before* it claims, so it sees every event committed before the
    flag was found up. This function raises it in a statement of its own, for every
    caller but one (a repeat of a pending event, the API kind's fallback, the shared
    app, a drain handing over). The webhook raises it in the very INSERT that stores
    its event (``inbound.inbound_event_store(request_drain=True)``) and calls
    :func:`inbound_drain_publish` only when that raised it: a busy channel costs no
    round trip and no task per event."""
    try:
        if not inbound.drain_flag_raise():
            return True
    except DatabaseError as exc:
        logger.warning("could not request an inbound drain: database %s", type(exc).__name__)
        return False
    return inbound_drain_publish()


def inbound_drain_publish() -> bool:
    """Publish the drain whose flag this request has just raised. If the broker is
    down, the flag goes down again so that a later event tries again (the relay
    enqueues what is pending meanwhile)."""
    if _enqueue(inbound_events_drain):
        return True
    with contextlib.suppress(DatabaseError):  # else it lapses (DRAIN_FLAG_SECONDS)
        inbound.drain_flag_lower()
    return False


@tenant_task(acks_late=True, ignore_result=True)
def inbound_events_drain() -> dict:
    """Process this tenant's pending webhook events in batches (``connectors.inbound``).

    Lowers the tenant's drain flag first (see :func:`inbound_drain_request`); after
    its time budget, with events still waiting, it asks for another drain, so the
    tenants' drains take turns on the queue."""
    inbound.drain_flag_lower()
    drained = inbound.inbound_events_drain()
    if drained.more:
        inbound_drain_request()
    return {"schema": connection.schema_name, **drained.outcomes, "more": drained.more}


@tenant_task()
def inbound_events_relay() -> dict:
    """Beat (every 30 s) and worker start: enqueue events still pending, e.g. stored
    while the broker was down. Processing claims each row, so a double enqueue is harmless."""
    ids = inbound.inbound_events_pending()
    sent = sum(inbound_event_enqueue(event_id) for event_id in ids)
    return {"schema": connection.schema_name, "pending": len(ids), "enqueued": sent}


@tenant_task()
def inbound_events_purge() -> dict:
    """Beat (daily): processed raw events older than the retention are deleted."""
    return {"schema": connection.schema_name, "purged": inbound.inbound_events_purge()}


def relay_on_worker_start(**_: object) -> None:
    """On worker start (celery ``worker_ready``): one relay per tenant, for what
    waited while no worker ran. Best effort: beat sends it every 30 s anyway."""
    try:
        schemas = list(
            Tenant.objects.exclude(schema_name="public")
            .filter(is_template=False)
            .values_list("schema_name", flat=True)
        )
    except Exception as exc:  # noqa: BLE001 - database down at start: beat covers it
        logger.warning("inbound relay at worker start skipped: %s", type(exc).__name__)
        return
    for schema in schemas:
        try:
            inbound_events_relay.apply_async(headers={"_schema_name": schema}, retry=False)
        except Exception as exc:  # noqa: BLE001
            logger.warning("inbound relay at worker start not sent: %s", type(exc).__name__)
            return
