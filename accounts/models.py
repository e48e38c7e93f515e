"""Users live in their tenant's schema (and operators in ``public``), with
their second factors: a TOTP device whose key is sealed by the keyring, and
backup codes kept only as keyed hashes."""

from __future__ import annotations

import os
import secrets
import time
from base64 import b32encode
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import connection, models
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from accounts.policy import Role
from parley.keyring import fields


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


# --- second factors ----------------------------------------------------------------------------
#
# django-otp's own TOTP and static plugins keep the TOTP key and the backup
# codes as plain columns: one database read (a backup, a stray replica, an
# injection) would expose every user's second factor. These devices plug into
# django-otp the same way (``django_otp.devices_for_user`` finds every
# ``Device`` subclass), but keep no second factor in clear.

TOTP_TABLE = "accounts_totpdevice"
TOTP_KEY_BYTES = 20  # 160 bits, RFC 4226's recommendation and django-otp's default
TOTP_KEY_PURPOSE = "credential"
BACKUP_CODE_TABLE = "accounts_backupcode"


class _SchemaBound(models.Model):
    """Remembers the schema a row was read from or sealed in.

    Sealed values are bound to their schema (the associated data and the key
    are the tenant's), so a device read inside ``tenant_context`` and used
    after it (tests, a task finishing up) still opens with its own tenant's key.
    """

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._schema = connection.schema_name
        return instance

    @property
    def schema_name(self) -> str:
        return getattr(self, "_schema", None) or connection.schema_name


class TOTPDevice(_SchemaBound, TimestampMixin, ThrottlingMixin, Device):
    """An authenticator app (RFC 6238), as django-otp's ``TOTPDevice`` but sealed.

    ``key_ct`` is the key encrypted with the tenant's credential key, bound to
    schema, table, column ``key`` and this row's id (reserved before the
    insert): copied to another row or tenant it does not decrypt. ``bin_key``
    decrypts it in memory when a code is checked or the enrolment page shows
    it, and is never stored or cached. Registered for key rotation in
    ``parley/keyring/registry.py``.
    """

    id = models.BigAutoField(primary_key=True)
    key_ct = models.BinaryField(editable=False)
    step = models.PositiveSmallIntegerField(default=30, help_text="The time step in seconds.")
    t0 = models.BigIntegerField(default=0, help_text="The Unix time at which steps start.")
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(
        default=1, help_text="Time steps in the past or future to allow."
    )
    drift = models.SmallIntegerField(default=0, help_text="Known clock drift, in steps.")
    last_t = models.BigIntegerField(
        default=-1, help_text="The step of the last accepted code: only later ones are accepted."
    )

    class Meta(Device.Meta):
        verbose_name = "TOTP device"

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    def save(self, *args, **kwargs):
        if self._state.adding and not self.key_ct:
            self.key_seal(os.urandom(TOTP_KEY_BYTES))
            kwargs.setdefault("force_insert", True)  # the id was reserved, the row is new
        super().save(*args, **kwargs)

    def key_seal(self, key: bytes) -> None:
        """Set the secret key (sealed; the row's id is reserved first)."""
        if len(key) < 10:
            raise ValueError("a TOTP key has at least 80 bits")
        if self.pk is None:
            self.pk = fields.reserve_ids(TOTP_TABLE)[0]
        self._schema = self.schema_name
        self.key_ct = fields.encrypt(key, pk=self.pk, **self._where())

    @property
    def bin_key(self) -> bytes:
        """The secret key, decrypted for this use only."""
        return fields.decrypt(bytes(self.key_ct), pk=self.pk, **self._where())

    def _where(self) -> dict:
        return {
            "schema": self.schema_name,
            "table": TOTP_TABLE,
            "column": "key",
            "purpose": TOTP_KEY_PURPOSE,
        }

    def get_throttle_factor(self) -> int:
        return settings.OTP_TOTP_THROTTLE_FACTOR

    def verify_token(self, token) -> bool:
        """django-otp's TOTP check: each time step is accepted once; failures slow down."""
        if not self.verify_is_allowed()[0]:
            return False
        try:
            code = int(token)
        except (TypeError, ValueError):
            verified = False
        else:
            totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
            totp.time = time.time()
            verified = totp.verify(code, self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                if getattr(settings, "OTP_TOTP_SYNC", True):
                    self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified

    @property
    def config_url(self) -> str:
        """The otpauth:// URL an authenticator app reads from the QR code."""
        label = self.user.get_username()
        params = urlencode(
            {
                "secret": b32encode(self.bin_key).decode().rstrip("="),
                "algorithm": "SHA1",
                "digits": self.digits,
                "period": self.step,
            }
        )
        issuer = (getattr(settings, "OTP_TOTP_ISSUER", "") or "").replace(":", "")
        if issuer:
            label = f"{issuer}:{label}"
            params += f"&issuer={quote(issuer)}"
        return f"otpauth://totp/{quote(label)}?{params}"


def backup_code_new() -> str:
    """Eight printable characters (40 random bits, base32 lower-case)."""
    return b32encode(secrets.token_bytes(5)).decode().lower()


def backup_code_normalise(code: str) -> str:
    return (code or "").strip().replace(" ", "").replace("-", "").lower()


def backup_code_digest(code: str, *, schema: str, device_id: int) -> str:
    """HMAC-SHA256 of a backup code under the tenant's blind key, bound to its device.

    Codes are random (40 bits) and the key never leaves the keyring, so a
    database copy gives nothing to guess against; a digest copied to another
    device (another user) matches nothing.
    """
    return fields.blind_index(
        backup_code_normalise(code), schema=schema, field=f"{BACKUP_CODE_TABLE}|{device_id}"
    )


class BackupCodeDevice(_SchemaBound, TimestampMixin, ThrottlingMixin, Device):
    """One-time backup codes (replaces django-otp's static device): only digests are kept."""

    id = models.BigAutoField(primary_key=True)

    class Meta(Device.Meta):
        verbose_name = "backup code device"

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    def get_throttle_factor(self) -> int:
        return settings.OTP_STATIC_THROTTLE_FACTOR

    def digest(self, code: str) -> str:
        return backup_code_digest(code, schema=self.schema_name, device_id=self.pk)

    def verify_token(self, token) -> bool:
        """Accept a code once: the matching row is deleted in the caller's transaction
        (the device row is locked by ``accounts.mfa.verify``, and a second DELETE of
        the same row finds nothing)."""
        if not self.verify_is_allowed()[0]:
            return False
        code = backup_code_normalise(str(token or ""))
        used = 0
        if code:
            used, _ = BackupCode.objects.filter(device=self, digest=self.digest(code)).delete()
        if used:
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
        else:
            self.throttle_increment(commit=True)
        return bool(used)


class BackupCode(models.Model):
    """An unused backup code, as its keyed digest (the code itself is shown once)."""

    id = models.BigAutoField(primary_key=True)
    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "digest"], name="backup_code_once")
        ]

    def __str__(self) -> str:
        return f"backup code #{self.pk}"
