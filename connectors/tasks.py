"""Credential rotation reminders (beat, daily, in every tenant)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts.policy import POLICY, Perm
from connectors.selectors import credentials_due
from parley.celery import tenant_task


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


@tenant_task(bind=True, acks_late=True, max_retries=10)
def message_deliver(self, message_id: int) -> dict:
    """Send one outbound message through its inbox's channel (enqueued on commit by
    ``conversations.services._enqueue_delivery``); retried with backoff on transient
    failures, ``failed`` after ``connectors.channels.MAX_ATTEMPTS`` attempts."""
    from connectors import channels

    try:
        outcome = channels.delivery_attempt(message_id=message_id)
    except channels.TransientDeliveryError as exc:
        # The attempt count lives on the message (not in the task), so a
        # redelivered task cannot exceed MAX_ATTEMPTS; max_retries is a backstop.
        raise self.retry(exc=exc, countdown=channels.retry_delay(exc.attempts)) from None
    if outcome == "busy":
        # Another worker holds the lease (or died holding it): look again once it has lapsed.
        raise self.retry(countdown=channels.LEASE_SECONDS)
    return {"schema": connection.schema_name, "message": message_id, "delivery": outcome}


@tenant_task()
def deliveries_resume(older_than_seconds: int = 120) -> int:
    """Beat: replies still queued and never attempted (their enqueue was lost, e.g.
    the broker was down at commit) are handed to ``message_deliver`` again.
    The per-message lease in ``connectors.channels`` keeps a send single."""
    from datetime import timedelta

    from django.utils import timezone

    from conversations.models import Message

    stale = Message.objects.filter(
        direction=Message.Direction.OUT,
        kind=Message.Kind.MESSAGE,
        delivery=Message.Delivery.QUEUED,
        delivery_attempts=0,
        created_at__lt=timezone.now() - timedelta(seconds=older_than_seconds),
    ).values_list("id", flat=True)[:500]
    ids = list(stale)
    for message_id in ids:
        message_deliver.delay(message_id)
    return len(ids)
