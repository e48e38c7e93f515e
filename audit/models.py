"""The append-only, hash-chained audit trail (one table and chain per schema)."""

from __future__ import annotations

import pgtrigger
from django.db import models

from audit.hashing import CONTENT_FIELDS

GENESIS_HASH = "0" * 64


class ActorKind(models.TextChoices):
    USER = "user", "User"
    OPERATOR = "operator", "Platform operator"
    BOT = "bot", "Bot"
    CONNECTOR = "connector", "Connector"
    SYSTEM = "system", "System"
    ANONYMOUS = "anonymous", "Anonymous"


class Outcome(models.TextChoices):
    ALLOWED = "allowed", "Allowed"
    DENIED = "denied", "Denied"
    FAILED = "failed", "Failed"


# Everything an event says; sealing may never change it.
_CONTENT_COLUMNS = ("occurred_at", *CONTENT_FIELDS, "content_hash")
# Before UPDATE or DELETE: the only change ever allowed is sealing an unsealed
# event (setting seq, prev_hash and hash once); content never changes.
_SEAL_ONLY = (
    "IF TG_OP = 'DELETE' THEN "
    "RAISE EXCEPTION 'audit events are append-only: DELETE refused'; END IF; "
    "IF OLD.seq IS NOT NULL OR OLD.hash IS NOT NULL OR NEW.seq IS NULL OR NEW.hash IS NULL "
    "OR NEW.prev_hash IS NULL OR NEW.id <> OLD.id "
    + "".join(f"OR NEW.{c} IS DISTINCT FROM OLD.{c} " for c in _CONTENT_COLUMNS)
    + "THEN RAISE EXCEPTION 'audit events are append-only: only sealing an unsealed event is allowed'; "
    "END IF; RETURN NEW;"
)


class AuditEvent(models.Model):
    """One event. Written unsealed (seq and hashes empty) inside the action's
    transaction; sealed into the chain right after commit by ``audit_seal()``."""

    id = models.BigAutoField(primary_key=True)
    seq = models.BigIntegerField(unique=True, null=True, blank=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_name = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=80, db_index=True)
    target_type = models.CharField(max_length=80, blank=True)
    target_id = models.CharField(max_length=80, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.ALLOWED)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64, null=True, blank=True)
    hash = models.CharField(max_length=64, unique=True, null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["actor_id", "id"]),
            models.Index(fields=["outcome", "id"]),
            models.Index(
                fields=["id"], condition=models.Q(seq__isnull=True), name="audit_event_unsealed"
            ),
        ]
        triggers = [
            pgtrigger.Trigger(
                name="audit_seal_only",
                operation=pgtrigger.Update | pgtrigger.Delete,
                when=pgtrigger.Before,
                func=_SEAL_ONLY,
            ),
            pgtrigger.Trigger(
                name="audit_no_truncate",
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                when=pgtrigger.Before,
                func="RAISE EXCEPTION 'audit events are append-only: TRUNCATE refused'; RETURN NULL;",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq or 'unsealed'} {self.action} {self.outcome}"

    @property
    def sealed(self) -> bool:
        return self.seq is not None


class AuditSink(models.Model):
    """Where this schema's events are forwarded (a SIEM)."""

    class Kind(models.TextChoices):
        SYSLOG = "syslog", "Syslog (RFC 5424 over TCP)"
        HTTPS = "https", "JSON over HTTPS"

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    host = models.CharField(max_length=253, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    use_tls = models.BooleanField(default=True)
    url = models.URLField(blank=True)
    # PEM of the CA that signs the sink's certificate when it is not publicly trusted.
    ca_pem = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    # The last event sequence number delivered; the next run starts after it.
    cursor_seq = models.BigIntegerField(default=0)
    delivered_count = models.BigIntegerField(default=0)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    # A forwarding run claims the sink with a conditional UPDATE (lease), so two
    # workers never send the same events, and no lock is held over the network.
    lease_token = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
