"""API tokens: tenant-bound JWTs, rotating refresh tokens in families, revocation.

* **Bound to the tenant.** Every token is signed (HS256, nothing else is
  accepted) with its tenant's token-signing key from the keyring
  (:mod:`parley.keyring.signing`: random, wrapped by the KEK, versioned,
  rotatable), names that key's version in its ``kid`` header and names the
  tenant in ``aud`` (``parley:<schema>``). Nothing is derived from
  ``SECRET_KEY``. A token of tenant A fails the signature *and* the audience
  check at tenant B. There is no platform-wide token: in the public schema
  nothing verifies.
* **Families.** Each sign-in (``POST /api/v1/auth/token/``) opens a
  :class:`~accounts.models.TokenFamily` whose ``expires_at`` is the absolute
  end of that sign-in (``REFRESH_TOKEN_LIFETIME``, 12 h). Every refresh token
  rotated from it carries the family id (``fam``) and expires with the family;
  access tokens (5 minutes) never outlive it either.
* **Rotation and reuse.** Refreshing records the presented token's ``jti`` as
  used (simplejwt's outstanding + blacklisted tables, per tenant; the token
  itself is never stored) under a row lock on the family, and hands out a new
  pair. Presenting a used refresh token again is reuse: the whole family is
  revoked (database row, and a Redis key that refuses its access tokens on
  the next request) and the event is audited. Two refreshes racing with one
  token: the lock orders them, the second is reuse.
* **Epoch.** Tokens carry the user's revocation epoch (``epc``, see
  :mod:`accounts.revocation`). A request whose token does not carry exactly
  the current epoch is refused: deactivation, a role change, a password change
  or an automated revocation work on the very next request (and an epoch
  ahead of the current one, which only a forger can make, never outlives the
  next one either).
* **Family.** Each request also checks that the token's family exists, belongs
  to the token's user, is not revoked and has not ended. The epoch, the
  family's revoked flag and a "family is live" marker are read in one Redis
  round trip; the database is asked only when the marker is missing.
* **MFA.** ``mfa_at`` (unix seconds) is set when the sign-in verified a
  one-time code and copied unchanged on refresh, so step-up
  (:func:`accounts.mfa.step_up_fresh`) sees when the code was really given. A
  token whose ``mfa_at`` is later than its ``iat`` is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone
from django_tenants.utils import get_public_schema_name
from rest_framework_simplejwt import settings as simplejwt_settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import (
    ExpiredTokenError,
    TokenBackendError,
    TokenBackendExpiredToken,
    TokenError,
)
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts import lockout, mfa, revocation
from accounts.models import TokenFamily
from accounts.throttles import delete_raw, get_raw, set_raw
from audit.context import Actor, actor_for_user, client_ip
from audit.models import Outcome
from audit.services import record
from parley.keyring import signing

ALGORITHM = "HS256"
ISSUER = "parley"
FAMILY_CLAIM, EPOCH_CLAIM, MFA_CLAIM = "fam", "epc", "mfa_at"
_REQUIRED_CLAIMS = ["exp", "iat", "jti", "aud", "iss", "token_type", "user_id", "fam", "epc"]


class TokenRefused(Exception):
    """A token or a sign-in refused; ``code`` is the stable code API clients see."""

    def __init__(
        self, code: str, detail: str, *, status: int = 401, retry_after: int | None = None
    ):
        super().__init__(detail)
        self.code, self.detail, self.status, self.retry_after = code, detail, status, retry_after


INVALID_DETAIL = "The token is invalid."
_EXPIRED = "The token has expired."
_REVOKED = "The token was revoked; sign in again."


# --- keys and tokens -------------------------------------------------------------------------------


def audience(schema: str) -> str:
    return f"parley:{schema}"


class TenantTokenBackend(TokenBackend):
    """simplejwt's backend with the tenant's keyring keys and audience and a strict decode."""

    def __init__(self, schema: str) -> None:
        # No key here: each encode and decode asks the keyring (cached in memory).
        super().__init__(ALGORITHM, None, audience=audience(schema), issuer=ISSUER, leeway=0)
        self.schema = schema

    def encode(self, payload: dict) -> str:
        kid, key = signing.signing_key(self.schema)
        claims = {**payload, "aud": self.audience, "iss": self.issuer}
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})

    def decode(self, token, verify: bool = True) -> dict:
        if not verify:
            raise TokenBackendError("Tokens are always verified.")
        try:
            # The header is read unverified only to pick the key; the signature
            # made with that key then covers it.
            key = signing.verification_key(self.schema, _kid_of(token))
            if key is None:
                raise TokenBackendError(INVALID_DETAIL)
            return jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],  # the header's alg is checked against this list
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED_CLAIMS, "strict_aud": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenBackendExpiredToken(_EXPIRED) from exc
        except jwt.InvalidTokenError as exc:
            raise TokenBackendError(INVALID_DETAIL) from exc


_B64URL = re.compile(r"[A-Za-z0-9_-]{1,512}")


def _kid_of(raw) -> object:
    """The ``kid`` of a token's header, unverified (it only picks the key), or None.

    Read here rather than with ``jwt.get_unverified_header``, which decodes and
    checks the whole token and would double the cost of every verification.
    """
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    if not isinstance(raw, str):
        return None
    head, dot, _ = raw.partition(".")
    if not dot or not _B64URL.fullmatch(head):
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    return header.get("kid") if isinstance(header, dict) else None


_backends: dict[str, TenantTokenBackend] = {}


def backend() -> TenantTokenBackend:
    """The backend of the current tenant; there is none in the public schema."""
    schema = connection.schema_name
    if not schema or schema == get_public_schema_name():
        raise TokenError("API tokens exist only in a tenant.")
    found = _backends.get(schema)
    if found is None:
        found = _backends[schema] = TenantTokenBackend(schema)
    return found


class _TenantToken(Token):
    @property
    def token_backend(self) -> TenantTokenBackend:
        return backend()


class TenantAccessToken(_TenantToken):
    token_type = "access"  # noqa: S105 (a claim value, not a secret)
    lifetime = timedelta(minutes=5)  # replaced at issue by SIMPLE_JWT's, capped by the family


class TenantRefreshToken(_TenantToken):
    token_type = "refresh"  # noqa: S105 (a claim value, not a secret)
    lifetime = timedelta(hours=12)  # replaced at issue by the family's absolute end


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode(cls: type[_TenantToken], raw: str) -> _TenantToken:
    try:
        token = cls(raw)
        # Signed by us, but be strict about shapes before anything reads them.
        int(token["user_id"])
        if not _is_int(token[EPOCH_CLAIM]) or not _is_int(token["iat"]):
            raise TypeError
        if not isinstance(token[FAMILY_CLAIM], str):
            raise TypeError
        mfa_at = token.get(MFA_CLAIM)
        # A code cannot have been verified after the token was issued.
        if mfa_at is not None and (not _is_int(mfa_at) or not 0 < mfa_at <= token["iat"]):
            raise TypeError
    except ExpiredTokenError:
        raise TokenRefused("token_expired", _EXPIRED) from None
    except (TokenError, KeyError, TypeError, ValueError):
        raise TokenRefused("token_invalid", INVALID_DETAIL) from None
    return token


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int  # seconds the access token lives

    def as_dict(self) -> dict:
        return {
            "access": self.access,
            "refresh": self.refresh,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


def _lifetime(name: str) -> timedelta:
    # Through the module: simplejwt rebinds ``api_settings`` when SIMPLE_JWT changes.
    return getattr(simplejwt_settings.api_settings, name)


def _pair(*, user_id: int, family: TokenFamily, epoch: int, mfa_at: int | None) -> TokenPair:
    access, refresh = TenantAccessToken(), TenantRefreshToken()
    access_until = min(access.current_time + _lifetime("ACCESS_TOKEN_LIFETIME"), family.expires_at)
    access.set_exp(from_time=access_until, lifetime=timedelta(0))
    refresh.set_exp(from_time=family.expires_at, lifetime=timedelta(0))  # rotation never extends
    for token in (access, refresh):
        token["user_id"] = str(user_id)
        token[FAMILY_CLAIM] = family.id
        token[EPOCH_CLAIM] = int(epoch)
        if mfa_at is not None:
            token[MFA_CLAIM] = int(mfa_at)
    return TokenPair(
        access=str(access),
        refresh=str(refresh),
        expires_in=max(0, int((access_until - access.current_time).total_seconds())),
    )


# --- revocation state in Redis ------------------------------------------------------------------------


def family_revoked_key(family_id: str) -> str:
    return f"jwt-family-revoked:{family_id}"


def family_live_key(family_id: str) -> str:
    """Set while the family is live, to its user's id: spares a query per request."""
    return f"jwt-family-live:{family_id}"


def _family_mark_live(family: TokenFamily) -> None:
    ttl = int((family.expires_at - timezone.now()).total_seconds())
    if ttl > 0:
        set_raw(family_live_key(family.id), str(family.user_id).encode(), ttl)


def _family_check(family_id: str, user_id: int) -> None:
    """The database's word when Redis has no marker: the family exists, is the
    user's, is not revoked and has not ended (a well-signed token is not enough)."""
    family = (
        TokenFamily.objects.filter(pk=family_id, user_id=user_id)
        .only("id", "user_id", "expires_at", "revoked_at")
        .first()
    )
    if family is None:
        raise TokenRefused("token_invalid", INVALID_DETAIL)
    if family.revoked_at is not None or family.expires_at <= timezone.now():
        raise TokenRefused("token_revoked", _REVOKED)
    _family_mark_live(family)


def _family_revoke(family: TokenFamily, *, reason: str) -> None:
    """Revoke in the caller's transaction; refuse the family's access tokens once it commits."""
    family.revoked_at = timezone.now()
    family.revoked_reason = reason
    family.save(update_fields=["revoked_at", "revoked_reason"])
    key = family_revoked_key(family.id)
    # Its access tokens never outlive the family, so the key need not either.
    ttl = max(60, int((family.expires_at - family.revoked_at).total_seconds()) + 60)

    def refuse_from_now() -> None:
        cache.set(key, 1, ttl)
        delete_raw(family_live_key(family.id))

    transaction.on_commit(refuse_from_now)


# --- sign-in, refresh, sign-out -----------------------------------------------------------------------


def _refuse_sign_in(request, *, username: str, reason: str, code: str, detail: str, status=401):
    record(
        "auth.token.failed",
        outcome=Outcome.DENIED if status == 403 else Outcome.FAILED,
        actor=Actor(kind="anonymous", name=username[:150]),
        target_type="user",
        details={"username": username[:150], "reason": reason},
        request=request,
    )
    raise TokenRefused(code, detail, status=status)


def token_obtain(*, request, username: str, password: str, otp: str | None) -> TokenPair:
    """Sign in through the API: password, then the one-time code when the user has a device."""
    ip = client_ip(request)
    if lockout.locked(username=username, ip=ip):
        record(
            "auth.token.failed",
            outcome=Outcome.DENIED,
            actor=Actor(kind="anonymous", name=username[:150]),
            target_type="user",
            details={"username": username[:150], "reason": "locked"},
            request=request,
        )
        raise TokenRefused(
            "locked",
            "Too many failed sign-ins for this account or network; try again later.",
            status=429,
            retry_after=settings.PARLEY_LOGIN_LOCK_SECONDS,
        )
    # The password backend directly: django.contrib.auth.authenticate() would
    # also record a web "auth.login.failed" for the same attempt.
    user = ModelBackend().authenticate(request, username=username, password=password)
    if user is None:  # unknown, wrong password or inactive: one answer for all
        lockout.register_failure(username=username, ip=ip)
        _refuse_sign_in(
            request,
            username=username,
            reason="credentials",
            code="invalid_credentials",
            detail="The username or password is wrong.",
        )
    mfa_at = None
    if mfa.has_device(user):
        if not otp:
            lockout.register_failure(username=username, ip=ip)
            _refuse_sign_in(
                request,
                username=username,
                reason="otp_missing",
                code="otp_required",
                detail="This account uses a one-time code: send it as `otp`.",
            )
        if mfa.verify(user, otp) is None:
            lockout.register_failure(username=username, ip=ip)
            _refuse_sign_in(
                request,
                username=username,
                reason="otp_invalid",
                code="invalid_otp",
                detail="The one-time code is wrong or was already used.",
            )
        mfa_at = int(time.time())
    elif mfa.mfa_required(user):
        _refuse_sign_in(
            request,
            username=username,
            reason="mfa_enrolment_required",
            code="mfa_enrolment_required",
            detail="Your account must use a one-time code: set up an authenticator app by "
            "signing in to the web app first.",
            status=403,
        )
    lockout.clear(username=username)
    epoch = revocation.current_for_issue(user.pk)
    now = timezone.now()
    with transaction.atomic():
        family = TokenFamily.objects.create(
            id=uuid.uuid4().hex,
            user=user,
            expires_at=now + _lifetime("REFRESH_TOKEN_LIFETIME"),
        )
        get_user_model().objects.filter(pk=user.pk).update(last_login=now)
        record(
            "auth.token.issued",
            actor=actor_for_user(user),
            target_type="user",
            target_id=user.pk,
            details={"family": family.id, "mfa": mfa_at is not None},
            request=request,
        )
        transaction.on_commit(lambda: _family_mark_live(family))
    return _pair(user_id=user.pk, family=family, epoch=epoch, mfa_at=mfa_at)


def token_refresh(*, request, raw: str) -> TokenPair:
    """A new pair for a refresh token used for the first time; reuse revokes the family."""
    refresh = _decode(TenantRefreshToken, raw)
    user_id, family_id, jti = int(refresh["user_id"]), refresh[FAMILY_CLAIM], refresh["jti"]
    if cache.get(signing.destroyed_key(str(_kid_of(raw)))):
        raise TokenRefused("token_invalid", INVALID_DETAIL)
    # Read before the transaction (no network call while holding the row lock).
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    epoch = revocation.current_for_issue(user_id)
    reused = False
    with transaction.atomic():
        family = (
            TokenFamily.objects.select_for_update().filter(pk=family_id, user_id=user_id).first()
        )
        if family is None:
            raise TokenRefused("token_invalid", INVALID_DETAIL)
        if family.revoked_at is not None:
            raise TokenRefused("token_revoked", _REVOKED)
        if family.expires_at <= timezone.now():
            raise TokenRefused("token_expired", _EXPIRED)
        if BlacklistedToken.objects.filter(token__jti=jti).exists():
            reused = True
            _family_revoke(family, reason="reuse")
            record(
                "auth.token.reuse_detected",
                outcome=Outcome.DENIED,
                actor=Actor(kind="user", id=str(user_id), name=user.get_username() if user else ""),
                target_type="token_family",
                target_id=family.id,
                details={"user_id": user_id},
                request=request,
            )
        else:
            if user is None or refresh[EPOCH_CLAIM] != epoch:
                raise TokenRefused("token_revoked", _REVOKED)
            try:
                with transaction.atomic():  # the unique jti backs up the row lock
                    used = OutstandingToken.objects.create(
                        user_id=user_id,
                        jti=jti,
                        token="",  # never store the token itself
                        created_at=datetime_from_epoch(refresh["iat"]),
                        expires_at=family.expires_at,
                    )
                    BlacklistedToken.objects.create(token=used)
            except IntegrityError:
                raise TokenRefused("token_revoked", _REVOKED) from None
            pair = _pair(user_id=user_id, family=family, epoch=epoch, mfa_at=refresh.get(MFA_CLAIM))
    if reused:
        raise TokenRefused(
            "token_reused",
            "This refresh token was already used: every token of this sign-in is revoked. "
            "Sign in again.",
        )
    return pair


def token_revoke(*, request, raw: str) -> None:
    """Sign out: revoke the family of a refresh token (its rotated ones work too)."""
    refresh = _decode(TenantRefreshToken, raw)
    user_id, family_id = int(refresh["user_id"]), refresh[FAMILY_CLAIM]
    with transaction.atomic():
        family = (
            TokenFamily.objects.select_for_update()
            .select_related("user")
            .filter(pk=family_id, user_id=user_id)
            .first()
        )
        if family is None:
            raise TokenRefused("token_invalid", INVALID_DETAIL)
        if family.revoked_at is None:
            _family_revoke(family, reason="sign_out")
            record(
                "auth.token.revoked",
                actor=actor_for_user(family.user),
                target_type="token_family",
                target_id=family.id,
                details={"reason": "sign_out"},
                request=request,
            )


# --- each request ------------------------------------------------------------------------------------


def authenticate_access(raw: str):
    """The active user an access token stands for, and the token; TokenRefused otherwise.

    One Redis round trip reads the user's revocation epoch, the family's
    revoked flag and a snapshot of the user row taken at the current epoch
    (without the password hash). A fresh snapshot saves the database query;
    any change that ends sessions moves the epoch and so outdates it, every
    save of the user drops it, and it lives at most ``SNAPSHOT_TTL`` seconds.
    """
    token = _decode(TenantAccessToken, raw)
    user_id, family_id = int(token["user_id"]), token[FAMILY_CLAIM]
    epoch_raw, revoked, live, snapshot, key_destroyed = get_raw(  # one round trip
        [
            revocation.epoch_key(user_id),
            family_revoked_key(family_id),
            family_live_key(family_id),
            snapshot_key(user_id),
            signing.destroyed_key(str(_kid_of(raw))),
        ]
    )
    if key_destroyed:  # destroyed at once, before this process re-read its keys
        raise TokenRefused("token_invalid", INVALID_DETAIL)
    epoch = int(epoch_raw) if epoch_raw is not None else 0
    # Exactly the current epoch: one from the future (only a forger makes
    # those) must not outlive the next revocation either.
    if revoked or token[EPOCH_CLAIM] != epoch:
        raise TokenRefused("token_revoked", _REVOKED)
    if live != str(user_id).encode():
        _family_check(family_id, user_id)
    user = _from_snapshot(snapshot, epoch)
    if user is None:
        user = user_by_id(user_id)
        if user is not None:
            _store_snapshot(user, epoch)
    if user is None or not user.is_active:
        raise TokenRefused("token_revoked", _REVOKED)
    return user, token


SNAPSHOT_TTL = 60


def snapshot_key(user_id) -> str:
    return f"user-row:{user_id}"


def snapshot_forget(user_id) -> None:
    """Drop the cached user row (called on every save of the user)."""
    delete_raw(snapshot_key(user_id))


@lru_cache(maxsize=1)
def _snapshot_fields():
    """The user's concrete fields except the password hash (never cached)."""
    User = get_user_model()
    return [f for f in User._meta.concrete_fields if f.attname != "password"]


def _store_snapshot(user, epoch: int) -> None:
    values = []
    for field in _snapshot_fields():
        value = getattr(user, field.attname)
        values.append(value.isoformat() if hasattr(value, "isoformat") else value)
    set_raw(snapshot_key(user.pk), json.dumps([epoch, values]).encode(), SNAPSHOT_TTL)


def _from_snapshot(raw: bytes | None, epoch: int):
    """A user instance (password deferred) from a snapshot taken at ``epoch``, else None."""
    if not raw:
        return None
    try:
        taken_at, values = json.loads(raw)
    except (ValueError, TypeError):
        return None
    fields = _snapshot_fields()
    if taken_at != epoch or len(values) != len(fields):
        return None
    row = []
    for field, value in zip(fields, values, strict=True):
        if value is not None and isinstance(field, models.DateTimeField):
            value = datetime.fromisoformat(value)
        row.append(value)
    User = get_user_model()
    return User.from_db(connection.alias, [f.attname for f in fields], row)


@lru_cache(maxsize=1)
def _user_select() -> tuple[str, list[str]] | None:
    """The SQL that reads one user row, or None when a field needs the ORM's conversion."""
    User = get_user_model()
    fields = User._meta.concrete_fields
    if any(hasattr(f, "from_db_value") for f in fields):
        return None
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    sql = (
        f"SELECT {columns} FROM {quote(User._meta.db_table)} "  # noqa: S608 (names from the model)
        f"WHERE {quote(User._meta.pk.column)} = %s"
    )
    return sql, [f.attname for f in fields]


def user_by_id(user_id: int):
    """The user row, on every request, without building an ORM query each time.

    Compiling ``User.objects.get(pk=...)`` costs more than the query itself
    (0.3 ms of the request on a small machine; see bench/auth.py). The statement
    is built once from the model; ``Model.from_db`` makes the instance, as the
    ORM does.
    """
    User = get_user_model()
    select = _user_select()
    if select is None:
        return User.objects.filter(pk=user_id).first()
    sql, names = select
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        row = cursor.fetchone()
    return None if row is None else User.from_db(connection.alias, names, row)
