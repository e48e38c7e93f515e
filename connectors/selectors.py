from __future__ import annotations

from django.db.models import Prefetch
from django.http import Http404
from django.utils import timezone

from connectors.models import ChannelCredential, Credential


def credential_list():
    """Credentials (never their ciphertext), each with the channels it signs for.

    A channel's signing secret is stored under a generated name
    (``channel-<public id>``); pages show it under the channel's name.
    """
    return (
        Credential.objects.defer("secret_ct")
        .prefetch_related(
            Prefetch(
                "channel_links",
                queryset=ChannelCredential.objects.select_related("channel").only(
                    "id", "role", "credential_id", "channel__id", "channel__name"
                ),
            )
        )
        .order_by("name")
    )


def credential_get(*, credential_id: int) -> Credential:
    credential = Credential.objects.filter(pk=credential_id).first()
    if credential is None:
        raise Http404("No such credential.")
    return credential


def credentials_due(days_ahead: int = 14):
    """Credentials whose rotation is due within ``days_ahead`` days (or overdue)."""
    return (
        Credential.objects.defer("secret_ct")
        .filter(rotation_due_at__lte=timezone.now() + timezone.timedelta(days=days_ahead))
        .order_by("rotation_due_at")
    )
