"""Connector credentials, kept encrypted and write-only."""

from __future__ import annotations

from django.db import models

from connectors.adapters import registry
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

    ``kind`` names the channel adapter (``connectors.adapters.registry``) that
    verifies, parses and sends for it; ``settings`` holds that kind's
    non-secret configuration, checked by the kind's settings validator
    (``connectors.kinds``), and ``ChannelCredential`` rows name its vaulted
    secrets by role (``signing_secret``, ``app_secret``, ``access_token``,
    ``verify_token``). Inbound events arrive at ``/webhooks/<kind>/<public_id>/``
    on the tenant's host.
    """

    class Health(models.TextChoices):
        UNKNOWN = "unknown", "Not used yet"
        OK = "ok", "Working"
        FAILING = "failing", "Failing"
        AUTH_FAILED = "auth_failed", "Credentials refused"

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=32, default="api")
    public_id = models.CharField(max_length=32, unique=True)
    settings = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    health = models.CharField(max_length=12, choices=Health.choices, default=Health.UNKNOWN)
    last_event_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=40, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        pending = getattr(self, "_signing_pending", None)
        if pending is not None:
            ChannelCredential.objects.update_or_create(
                channel=self,
                role=ChannelCredential.Role.SIGNING_SECRET,
                defaults={"credential": pending},
            )
            self._signing_pending = None

    @property
    def signing_credential_id(self) -> int | None:
        credential = self.signing_credential
        return credential.pk if credential else None

    def kind_label(self) -> str:
        try:
            return registry.get(self.kind).label or self.kind
        except registry.UnknownChannelKind:
            return self.kind

    def credential_for(self, role: str) -> Credential | None:
        for link in self.credential_links.all():
            if link.role == role:
                return link.credential
        return None

    @property
    def outbound_url(self) -> str:
        """The API kind's reply URL (a setting since channel kinds; kept as a name)."""
        return str((self.settings or {}).get("outbound_url", ""))

    @outbound_url.setter
    def outbound_url(self, url: str) -> None:
        self.settings = {**(self.settings or {}), "outbound_url": url}

    @property
    def signing_credential(self) -> Credential | None:
        pending = getattr(self, "_signing_pending", None)
        return pending or self.credential_for(ChannelCredential.Role.SIGNING_SECRET)

    @signing_credential.setter
    def signing_credential(self, credential: Credential) -> None:
        # Channel(..., signing_credential=c) as before the roles: linked on save.
        self._signing_pending = credential


class ChannelCredential(models.Model):
    """A channel's secret in one role; the secret itself is a vaulted ``Credential``."""

    class Role(models.TextChoices):
        SIGNING_SECRET = "signing_secret", "Signing secret"
        APP_SECRET = "app_secret", "App secret"
        ACCESS_TOKEN = "access_token", "Access token"
        VERIFY_TOKEN = "verify_token", "Verify token"

    id = models.BigAutoField(primary_key=True)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="credential_links")
    role = models.CharField(max_length=20, choices=Role.choices)
    credential = models.ForeignKey(
        Credential, on_delete=models.PROTECT, related_name="channel_links"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "role"], name="channel_credential_role")
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.role}"


class InboundEvent(models.Model):
    """A verified webhook body, kept encrypted until it has been processed.

    Stored before anything else happens (DESIGN.md, messages step 2), so a
    broker outage loses nothing: ``connectors.inbound`` enqueues processing on
    commit and a beat relay re-enqueues what is still pending. ``dedupe_key``
    (the event's external id, or a hash of the body) makes a retried webhook
    one row. ``raw_ct`` is bound to this row (tenant, table, column, id).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the unique (channel, dedupe_key) index leads with it, and one
    # index fewer is one write fewer on every webhook (docs/scaling.md).
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    dedupe_key = models.CharField(max_length=300)
    raw_ct = models.BinaryField(null=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "dedupe_key"], name="inbound_event_once")
        ]
        indexes = [models.Index(fields=["status", "received_at"], name="inbound_event_status")]

    def __str__(self) -> str:
        return f"inbound event #{self.pk}"


class InboundDrain(models.Model):
    """The tenant's "a drain of inbound events is queued" flag: one row, id 1.

    Raised by the INSERT that stores a webhook's event, in the same statement
    (``connectors.inbound``), so asking for a drain costs a webhook no round trip
    of its own; only the statement that raises it publishes the drain task. The
    drain lowers it before it claims anything. ``requested_at`` is when it was
    raised: a flag older than ``connectors.inbound.DRAIN_FLAG_SECONDS`` stands for
    a task that was lost, and the next event raises it again.
    """

    ROW = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=ROW)
    requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="inbound_drain_one_row")
        ]

    def __str__(self) -> str:
        return "inbound drain flag"


class AiProvider(models.Model):
    """An OpenAI-compatible chat-completions API the bots' AI answer node may call.

    ``base_url`` is checked like a channel's ``graph_base_url`` (``connectors.ai``);
    the API key is a vaulted ``Credential`` (kind ``api_key``, connector
    ``openai``), written through ``connectors.ai.services`` and never read back
    (pages and the API show its last four characters). ``health`` turns
    ``auth_failed`` when the provider refuses the key (401/403): the bots then fall
    back to knowledge-base answers until the key is replaced or a test succeeds.
    """

    class Health(models.TextChoices):
        UNKNOWN = "unknown", "Not used yet"
        OK = "ok", "Working"
        FAILING = "failing", "Failing"
        AUTH_FAILED = "auth_failed", "Key refused"

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=80, unique=True)
    base_url = models.CharField(max_length=300)
    model = models.CharField(max_length=100)
    api_key = models.ForeignKey(Credential, on_delete=models.PROTECT, related_name="ai_providers")
    enabled = models.BooleanField(default=True)
    timeout_seconds = models.PositiveSmallIntegerField(default=15)
    max_tokens = models.PositiveIntegerField(default=400)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    health = models.CharField(max_length=12, choices=Health.choices, default=Health.UNKNOWN)
    last_error_code = models.CharField(max_length=40, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
