"""Multi-factor authentication: who must use it, checking a code, step-up.

* Platform operators (users of the ``public`` schema) and tenant owners and
  admins must always use MFA. The tenant's :class:`~accounts.models.SecurityPolicy`
  decides for the other roles (default: every role).
* A code is checked against the user's confirmed devices (TOTP, then backup
  codes) under a row lock: a TOTP code is accepted once (the device keeps the
  last accepted time step), a backup code once (its digest row is deleted), and
  failures slow the device down (``OTP_*_THROTTLE_FACTOR``).
* No second factor is stored in clear (``accounts.models``): TOTP keys are
  sealed with the tenant's credential key, backup codes kept as keyed digests.
* Step-up: sensitive actions need an OTP verified within
  ``PARLEY_STEP_UP_SECONDS`` (5 minutes). For a web session the time of the
  last verification is kept in the session; an API token carries it as the
  ``mfa_at`` claim, or the request brings a fresh code in ``X-Parley-OTP``.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection, transaction
from django_otp import devices_for_user, user_has_device

from accounts import lockout
from accounts.models import (
    BackupCode,
    BackupCodeDevice,
    TOTPDevice,
    backup_code_digest,
    backup_code_new,
)
from accounts.policy import Role
from audit.context import client_ip
from audit.models import Outcome
from audit.services import record

ALWAYS_MFA_ROLES = frozenset({Role.OWNER, Role.ADMIN})
SESSION_OTP_AT = "parley_otp_at"
OTP_HEADER = "HTTP_X_PARLEY_OTP"


def is_operator(user) -> bool:
    """Users of the public schema are platform operators."""
    return connection.schema_name == "public" and bool(getattr(user, "is_authenticated", False))


def policy_roles() -> frozenset[str]:
    """The roles the tenant's policy makes enrol (owners and admins always do)."""
    from accounts.models import SecurityPolicy

    policy = SecurityPolicy.objects.filter(pk=1).only("mfa_roles").first()
    roles = set(Role.values) if policy is None else set(policy.mfa_roles)
    return frozenset(roles | ALWAYS_MFA_ROLES)


def mfa_required(user) -> bool:
    if is_operator(user):
        return True
    if user.role in ALWAYS_MFA_ROLES:
        return True
    return user.role in policy_roles()


def has_device(user) -> bool:
    return user_has_device(user, confirmed=True)


def totp_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def verify(user, token: str | None):
    """The device that accepts ``token`` (consumed), or None.

    Codes are digits only (TOTP: 6; backup codes: 8 letters and digits); the
    rows are locked so that one code cannot be accepted twice by two requests
    at once.
    """
    token = (token or "").strip().replace(" ", "")
    if not token or len(token) > 16 or not token.isalnum():
        return None
    with transaction.atomic():
        for device in devices_for_user(user, confirmed=True, for_verify=True):
            if isinstance(device, TOTPDevice) and not token.isdigit():
                continue
            if device.verify_token(token):
                return device
    return None


def verify_is_throttled(user) -> bool:
    device = totp_device(user)
    return device is not None and not device.verify_is_allowed()[0]


# --- step-up -----------------------------------------------------------------------------------


def note_verified(request) -> None:
    """Record that the session's user just proved an OTP (for step-up), under a new
    session key: the id the session had before (seen while only the password was
    proven, or by whoever could read it then) must not carry the new standing."""
    request.session[SESSION_OTP_AT] = int(time.time())
    request.session.cycle_key()


class CodesLocked(Exception):
    """Too many wrong codes for this account or address: no code is checked now."""


def _header_code_verified(request) -> bool:
    """A code in ``X-Parley-OTP``: checked under the same lock as the code pages,
    a wrong one counted towards it and audited (``auth.mfa.failed``)."""
    code = request.META.get(OTP_HEADER)
    if not code:
        return False
    user = request.user
    username, ip = user.get_username(), client_ip(request)
    if lockout.locked(username=username, ip=ip):
        record(
            "auth.mfa.failed",
            outcome=Outcome.DENIED,
            target_type="user",
            target_id=user.pk,
            details={"step": "step-up", "via": "X-Parley-OTP", "reason": "locked"},
            request=request,
        )
        raise CodesLocked
    if verify(user, code) is not None:
        record(
            "auth.mfa.step_up",
            target_type="user",
            target_id=user.pk,
            details={"via": "X-Parley-OTP"},
            request=request,
        )
        return True
    lockout.register_failure(username=username, ip=ip)
    record(
        "auth.mfa.failed",
        outcome=Outcome.DENIED,
        target_type="user",
        target_id=user.pk,
        details={"step": "step-up", "via": "X-Parley-OTP"},
        request=request,
    )
    return False


def step_up_fresh(request) -> bool:
    """True when the request's user verified an OTP within the step-up window.

    Raises :class:`CodesLocked` when the request brings a code in
    ``X-Parley-OTP`` while the account or address is locked.
    """
    window = settings.PARLEY_STEP_UP_SECONDS
    auth = getattr(request, "auth", None)
    if auth is not None and hasattr(auth, "get"):
        mfa_at = auth.get("mfa_at")
        if mfa_at and time.time() - int(mfa_at) <= window:
            return True
        return _header_code_verified(request)
    session = getattr(request, "session", None)
    if session is None:
        return False
    at = session.get(SESSION_OTP_AT)
    return at is not None and time.time() - int(at) <= window


def backup_codes_create(user, count: int = 10, *, name: str = "backup") -> list[str]:
    """Replace the codes of the user's backup device ``name``; returns the new ones.

    Only their digests are stored: the caller shows the codes once.
    """
    with transaction.atomic():
        device, _ = BackupCodeDevice.objects.get_or_create(
            user=user, name=name, defaults={"confirmed": True}
        )
        device.codes.all().delete()
        codes: list[str] = []
        while len(codes) < count:
            code = backup_code_new()
            if code not in codes:
                codes.append(code)
        BackupCode.objects.bulk_create(
            [BackupCode(device=device, digest=device.digest(code)) for code in codes]
        )
    return codes


def backup_codes_left(user) -> int:
    return BackupCode.objects.filter(device__user=user, device__confirmed=True).count()


def backup_codes_unused(user, codes: list[str], *, name: str) -> list[str]:
    """Those of ``codes`` (known from elsewhere) that ``name`` still accepts."""
    device = BackupCodeDevice.objects.filter(user=user, name=name).first()
    if device is None:
        return []
    by_digest = {
        backup_code_digest(code, schema=device.schema_name, device_id=device.pk): code
        for code in codes
    }
    kept = set(device.codes.filter(digest__in=by_digest).values_list("digest", flat=True))
    return [code for digest, code in by_digest.items() if digest in kept]


def devices_reset(user, *, by, request=None) -> None:
    """Remove every MFA device of ``user`` and end their sessions and tokens at once.

    The caller checks step-up and the policy table; the user must enrol again
    at their next sign-in (when MFA is required of them).
    """
    from accounts import revocation
    from audit.services import record

    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        BackupCodeDevice.objects.filter(user=user).delete()
        record(
            "auth.mfa.reset",
            target_type="user",
            target_id=user.pk,
            details={"user": user.get_username(), "by_self": by.pk == user.pk},
            request=request,
        )
    revocation.bump(user.pk)
