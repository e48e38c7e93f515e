"""Platform-level tables (public schema only): the keyring's wrapped keys."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class WrappedKey(models.Model):
    """A tenant's data-encryption key, stored only wrapped by the KEK.

    Keys are per tenant schema and purpose, versioned; exactly one version per
    (schema, purpose) is active (used to encrypt); older versions stay to
    decrypt until no row uses them. Destroying them (offboarding) makes every
    copy of that tenant's encrypted rows unreadable.
    """

    class Purpose(models.TextChoices):
        DATA = "data", "Field encryption"
        BLIND = "blind", "Blind indexes"
        CREDENTIAL = "credential", "Connector credentials"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired (decrypt only)"
        DESTROYED = "destroyed", "Destroyed"

    id = models.BigAutoField(primary_key=True)
    schema_name = models.CharField(max_length=63)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    version = models.PositiveIntegerField()
    provider = models.CharField(max_length=16)
    wrapped = models.TextField(blank=True)  # emptied when destroyed
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["schema_name", "purpose", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["schema_name", "purpose", "version"], name="wrapped_key_version"
            ),
            models.UniqueConstraint(
                fields=["schema_name", "purpose"],
                condition=models.Q(state="active"),
                name="wrapped_key_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.schema_name}/{self.purpose}/v{self.version} ({self.state})"
