"""Users live in their tenant's schema (and operators in ``public``)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models

from accounts.policy import Role


class User(AbstractUser):
    """A person who signs in.

    In a tenant schema the ``role`` says what they may do (see
    ``accounts.policy``). In the public schema every active user is a platform
    operator and ``role`` is unused.
    """

    id = models.BigAutoField(primary_key=True)
    email = models.EmailField(unique=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    # Until when an approved just-in-time role grant may elevate this user: the
    # policy check reads grants only while this lies in the future.
    elevated_until = models.DateTimeField(null=True, blank=True, editable=False)

    REQUIRED_FIELDS = ["email"]

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username


def _all_roles() -> list[str]:
    return list(Role.values)


class SecurityPolicy(models.Model):
    """The tenant's security settings: one row per tenant schema (pk 1).

    Owners and admins must always use MFA whatever ``mfa_roles`` says; the
    policy decides for the other roles (default: every role).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    mfa_roles = models.JSONField(default=_all_roles)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="securitypolicy_one_row")
        ]

    def __str__(self) -> str:
        return "security policy"


class AccessGrant(models.Model):
    """A just-in-time, time-bounded elevation: a role, or membership of one inbox."""

    class Kind(models.TextChoices):
        ROLE = "role", "Role"
        INBOX = "inbox", "Inbox"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_grants")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    # No foreign key: accounts also lives in ``public``, where inboxes do not.
    inbox_id = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=500)
    hours = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "status", "expires_at"])]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(kind="role") & ~models.Q(role="") & models.Q(inbox_id__isnull=True)
                )
                | (models.Q(kind="inbox") & models.Q(role="") & models.Q(inbox_id__isnull=False)),
                name="accessgrant_kind_matches_target",
            )
        ]

    def __str__(self) -> str:
        return f"grant #{self.pk} ({self.kind}) for {self.user_id}"


class TokenFamily(models.Model):
    """One sign-in through the API: every refresh token rotated from it shares the family.

    Reusing a rotated refresh token revokes the family: its refresh tokens are
    refused, and so are its access tokens (the revocation is also kept in Redis
    for the per-request check).
    """

    id = models.CharField(primary_key=True, max_length=32)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="token_families")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"token family {self.id}"
