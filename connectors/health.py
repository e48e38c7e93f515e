"""What a channel records about itself while it runs: its last event and its health.

Below ``connectors.channels`` (which configures channels) and the kinds' own
services (``connectors.webchat.services``), so every path that sees a channel
work or fail records it the same way: the webhooks' inbound events, the web
chat's visitor messages, deliveries and "Test connection".
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.policy import POLICY, Perm
from audit.context import Actor
from audit.services import record
from connectors.models import Channel


def channel_actor(channel: Channel) -> Actor:
    """Who acts when the channel does (inbound events, deliveries)."""
    return Actor(kind="connector", id=str(channel.pk), name=f"{channel.kind}:{channel.name}"[:200])


EVENT_SEEN_SECONDS = 60  # "last event" is kept to this precision


def channel_event_seen(*, channel: Channel) -> None:
    """A verified event arrived (the list page's "last event", to the minute).

    Written at most once per ``EVENT_SEEN_SECONDS``: every webhook of a channel
    writing the channel's row made them queue on its lock (docs/scaling.md). The
    update is conditional, so concurrent webhooks that all saw an old value
    write it once."""
    now = timezone.now()
    stale = now - timedelta(seconds=EVENT_SEEN_SECONDS)
    if channel.last_event_at is not None and channel.last_event_at > stale:
        return
    Channel.objects.filter(pk=channel.pk).filter(
        Q(last_event_at__isnull=True) | Q(last_event_at__lte=stale)
    ).update(last_event_at=now)
    channel.last_event_at = now


def channel_health_ok(*, channel: Channel) -> None:
    """The channel worked (a delivered reply, a passed test, a visitor's message):
    "Working". No write when the row read already said so."""
    if channel.health == Channel.Health.OK:
        return
    Channel.objects.filter(pk=channel.pk).exclude(health=Channel.Health.OK).update(
        health=Channel.Health.OK
    )
    channel.health = Channel.Health.OK


def _tell_admins(channel_name: str, code: str) -> None:
    roles = [role for role, perms in POLICY.items() if Perm.CONNECTORS_MANAGE in perms]
    recipients = list(
        get_user_model()
        .objects.filter(is_active=True, role__in=roles)
        .values_list("email", flat=True)
    )
    if recipients:
        send_mail(
            subject=f"Parley: channel {channel_name} cannot send ({code})",
            message=f"The channel {channel_name} refused our credentials ({code}). "
            "Replies on it fail until its access token or secret is replaced on the "
            "Credentials page of your workspace (Settings, Credentials); then use "
            "Test connection on the Channels page.",
            from_email=None,
            recipient_list=recipients,
            fail_silently=True,
        )


def channel_health_failed(*, channel_id: int, code: str, auth_failed: bool = False) -> None:
    """A send failed for a reason about the channel: record it; on refused credentials
    mark it unhealthy and, the first time, audit and e-mail who manages connectors."""
    now = timezone.now()
    health = Channel.Health.AUTH_FAILED if auth_failed else Channel.Health.FAILING
    with transaction.atomic():
        channel = Channel.objects.select_for_update().filter(pk=channel_id).first()
        if channel is None:
            return
        newly_refused = auth_failed and channel.health != Channel.Health.AUTH_FAILED
        channel.health, channel.last_error_code, channel.last_error_at = health, code[:40], now
        channel.save(update_fields=["health", "last_error_code", "last_error_at"])
        if newly_refused:
            record(
                "channel.auth_failed",
                actor=channel_actor(channel),
                outcome="failed",
                target_type="channel",
                target_id=channel.pk,
                details={"name": channel.name, "kind": channel.kind, "code": code[:40]},
            )
            name = channel.name
            transaction.on_commit(lambda: _tell_admins(name, code[:40]))


# What a channel's last error code means, for the people who fix it (the
# Channels page and "Test connection"). Codes are stable; Meta's own text is
# never stored (it can name a customer).
ERROR_TEXTS = {
    "auth_failed": "Meta refused the access token: replace it on the Credentials page.",
    "credentials_missing": "A secret this channel needs is missing.",
    "credentials_invalid": "A stored secret of this channel cannot be read: replace it on the Credentials page.",
    "settings_invalid": "The channel's settings are not valid: check its account id.",
    "network_error": "Parley could not reach Meta (no network, a failed lookup or a timeout).",
    "destination_refused": "Parley refused the Graph API address (a private address or a bad URL).",
    "server_error": "Meta answered with a server error; it usually passes.",
    "rate_limited": "Meta asked Parley to slow down; replies are retried later.",
    "rejected": "Meta refused the request: check the account id and the app's permissions.",
    "response_invalid": "Meta's answer could not be read.",
}


def error_text(code: str) -> str:
    """A channel error code in words (``vendor_<n>``: an error Meta reported in a webhook)."""
    if code in ERROR_TEXTS:
        return ERROR_TEXTS[code]
    if code.startswith("vendor_"):
        number = code.removeprefix("vendor_")
        said = f" (code {number})" if number.isascii() and number.isdigit() else ""
        return f"Meta reported an error for this account{said}."
    return "The last attempt failed."
