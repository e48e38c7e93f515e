"""Connector credentials, kept encrypted and write-only."""

from __future__ import annotations

from django.db import models

from parley.keyring import fields


class Credential(models.Model):
    """A secret a connector uses (API key, token, webhook secret).

    The secret is encrypted with the tenant's credential key, bound to this
    row; no API or page ever returns it, only its last four characters. It is
    decrypted only by :func:`connectors.services.credential_use`, which audits
    each use.
    """

    class Kind(models.TextChoices):
        API_KEY = "api_key", "API key"
        ACCESS_TOKEN = "access_token", "Access token"
        WEBHOOK_SECRET = "webhook_secret", "Webhook signing secret"
        PASSWORD = "password", "Password"

    id = models.BigAutoField(primary_key=True)
    name = models.SlugField(max_length=60, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    connector = models.CharField(
        max_length=40, help_text="which connector uses it, e.g. whatsapp, hubspot"
    )
    secret_ct = models.BinaryField()
    last4 = models.CharField(max_length=4)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField()
    rotation_due_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    use_count = models.PositiveIntegerField(default=0)
    reminded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def allocate_pk(self) -> int:
        """The ciphertext is bound to the row id, so the id comes first."""
        if self.pk is None:
            self.pk = fields.reserve_ids(self._meta.db_table)[0]
        return self.pk


class Channel(models.Model):
    """Where messages come from and replies go: one per inbox.

    ``api`` (the generic channel for custom integrations): inbound events are
    JSON POSTed to ``/webhooks/api/<public_id>/`` on the tenant's host, signed
    with HMAC-SHA256 under the channel's signing secret (a write-only
    ``Credential``); replies are POSTed, signed the same way, to
    ``outbound_url``. Meta kinds arrive with the channels issue.

    ``webchat`` (the embeddable website widget, ``connectors.webchat``): no
    signing secret (``signing_credential`` is empty); visitors authenticate with
    short-lived tokens Parley signs, and replies wait for the visitor's poll.
    ``settings`` holds the kind's non-secret configuration (web chat:
    ``allowed_origins``).
    """

    class Kind(models.TextChoices):
        API = "api", "API channel"
        WEBCHAT = "webchat", "Web chat"

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.API)
    public_id = models.CharField(max_length=32, unique=True)
    outbound_url = models.URLField(max_length=500, blank=True)
    # Empty for kinds that verify nothing with a shared secret (web chat).
    signing_credential = models.ForeignKey(
        Credential, on_delete=models.PROTECT, related_name="channels", null=True, blank=True
    )
    settings = models.JSONField(default=dict, blank=True)  # per kind, never a secret
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
