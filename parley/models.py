"""Platform-level tables (public schema only): the keyring's wrapped keys."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class WrappedKey(models.Model):
    """A tenant's data-encryption or token-signing key, stored only wrapped by the KEK.

    Keys are per tenant schema and purpose, versioned; exactly one version per
    (schema, purpose) is active (used to encrypt); older versions stay to
    decrypt until no row uses them. Destroying them (offboarding) makes every
    copy of that tenant's encrypted rows unreadable.
    """

    class Purpose(models.TextChoices):
        DATA = "data", "Field encryption"
        BLIND = "blind", "Blind indexes"
        CREDENTIAL = "credential", "Connector credentials"
        # HMAC-SHA256 key that signs the tenant's API tokens (kid = "v<version>").
        TOKEN = "token", "API token signing"

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


class RekeyJob(models.Model):
    """Re-encryption of one tenant's rows after a key rotation, resumable.

    The task works through each registered column in primary-key order and
    records the last key it finished, so a run that was killed continues
    where it stopped.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    schema_name = models.CharField(max_length=63)
    purpose = models.CharField(max_length=16)
    target_version = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    column_index = models.PositiveIntegerField(default=0)
    last_pk = models.BigIntegerField(default=0)
    # The highest id of the current column when the job reached it: newer rows
    # were written with the new key already (the final check catches the rest).
    stop_pk = models.BigIntegerField(default=0)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"rekey {self.schema_name}/{self.purpose} → v{self.target_version} ({self.state})"

    @property
    def percent(self) -> int:
        return (
            100 if self.rows_total == 0 else min(100, round(100 * self.rows_done / self.rows_total))
        )
