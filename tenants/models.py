"""The public schema's view of businesses: one Tenant per PostgreSQL schema."""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin

from parley import phones

PUBLIC_SCHEMA = "public"


def default_phone_region() -> str:
    return settings.PARLEY_DEFAULT_PHONE_REGION


def validate_phone_region(value: str) -> None:
    if not phones.region_valid(value):
        raise ValidationError(
            "Give a region as two capital letters phonenumbers knows (e.g. US, GB, DE).",
            code="phone_region",
        )


class TenantQuerySet(models.QuerySet["Tenant"]):
    def businesses(self) -> TenantQuerySet:
        """Real tenants: neither the platform (public) nor the clone template."""
        return self.exclude(schema_name=PUBLIC_SCHEMA).exclude(is_template=True)

    def schedulable(self) -> TenantQuerySet:
        """Schemas beat may send work to: the platform and active businesses."""
        return self.filter(
            models.Q(schema_name=PUBLIC_SCHEMA)
            | models.Q(status=Tenant.Status.ACTIVE, is_template=False)
        )


class Tenant(TenantMixin):
    class Status(models.TextChoices):
        PROVISIONING = "provisioning", "Provisioning"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        FAILED = "failed", "Provisioning failed"
        OFFBOARDING = (
            "offboarding",
            "Offboarding (closed, data kept until the retention window ends)",
        )
        OFFBOARDED = "offboarded", "Offboarded (schema dropped, keys destroyed)"

    id = models.BigAutoField(primary_key=True)
    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROVISIONING)
    # The migrated schema every new tenant is cloned from. It has no domain,
    # so it can never be reached by a request.
    is_template = models.BooleanField(default=False)
    status_reason = models.CharField(max_length=300, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    provisioned_at = models.DateTimeField(null=True, blank=True)
    provisioning_seconds = models.FloatField(null=True, blank=True)
    owner_email = models.EmailField(blank=True)
    # Filled by the tenant-usage beat task, run inside each tenant's schema.
    usage_users = models.PositiveIntegerField(null=True, blank=True)
    usage_refreshed_at = models.DateTimeField(null=True, blank=True)
    offboard_after = models.DateTimeField(null=True, blank=True)
    offboarded_at = models.DateTimeField(null=True, blank=True)
    # Phone numbers written without +<country> are read in this region; the blind
    # indexes depend on it (changing it re-indexes: manage.py tenant_phone_region).
    phone_region = models.CharField(
        max_length=2, default=default_phone_region, validators=[validate_phone_region]
    )

    # Schemas are created explicitly by tenants.services (as the owner role),
    # never as a side effect of save() in a web process that runs as the app role.
    auto_create_schema = False
    auto_drop_schema = False

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_public(self) -> bool:
        return self.schema_name == PUBLIC_SCHEMA

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Domain(DomainMixin):
    id = models.BigAutoField(primary_key=True)

    def __str__(self) -> str:
        return self.domain


class AuditAnchor(models.Model):
    """A chain head copied into the public schema at a point in time.

    If events are later cut from the end of a chain, its head falls below an
    anchored sequence number and ``audit_verify`` reports it. Append-only.
    """

    id = models.BigAutoField(primary_key=True)
    schema_name = models.CharField(max_length=63, db_index=True)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    anchored_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["schema_name", "-seq"]
        constraints = [
            models.UniqueConstraint(fields=["schema_name", "seq"], name="audit_anchor_unique_head")
        ]
        triggers = [
            pgtrigger.Protect(
                name="anchor_append_only", operation=pgtrigger.Update | pgtrigger.Delete
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schema_name}#{self.seq}"


class BreakGlassGrant(models.Model):
    """A platform operator's read-only, time-limited access to one tenant.

    Requested with a reason and a duration; a tenant owner approves it, or the
    operator declares an emergency (active at once, owners notified at once).
    It lives in ``public`` because the operator does; every use is recorded in
    both the tenant's trail and the platform's.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the tenant owner"
        ACTIVE = "active", "Active"
        DENIED = "denied", "Denied"
        ENDED = "ended", "Ended"
        EXPIRED = "expired", "Expired"

    id = models.BigAutoField(primary_key=True)
    operator = models.ForeignKey(
        "accounts.User", on_delete=models.PROTECT, related_name="break_glass_grants"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="break_glass_grants")
    reason = models.CharField(max_length=500)
    minutes = models.PositiveIntegerField()
    emergency = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.CharField(max_length=254, blank=True)  # tenant owner's e-mail
    decided_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Who ended it early: the operator (withdrawing or ending) or an owner. Kept
    # apart from ``decided_by`` so ending never re-credits the approving owner.
    ended_by = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["tenant", "status"])]

    def __str__(self) -> str:
        return f"break-glass #{self.pk} on {self.tenant_id}"

    @property
    def operator_name(self) -> str:
        """How people see the operator: the e-mail address, else the username."""
        return self.operator.email or self.operator.get_username()

    @property
    def changed_by(self) -> str:
        """Whoever made the grant what it is now (pages show "<state> by <this>")."""
        if self.status == self.Status.ENDED:
            return self.ended_by
        return self.decided_by

    @property
    def is_live(self) -> bool:
        return (
            self.status == self.Status.ACTIVE
            and self.expires_at is not None
            and self.expires_at > timezone.now()
        )


class ChannelRoute(models.Model):
    """Where the platform's shared Meta app sends an account's events.

    One POST to the shared app's webhook can carry entries for several
    businesses; each entry names the account it concerns (a WhatsApp
    phone-number id, a Messenger page id, an Instagram account id). This table,
    in the public schema, maps ``(kind, routing_id)`` to the one tenant schema
    and channel that connected it. Unique per kind, so an account reaches at
    most one tenant. Written only by ``tenants.services.channel_route_*``, which
    ``connectors.channels`` calls in the channel's own transaction.
    """

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=32)
    routing_id = models.CharField(max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="channel_routes")
    channel_public_id = models.CharField(max_length=32)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "routing_id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "routing_id"], name="channel_route_unique_id")
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.routing_id}"
