"""DRF authentication by the tenant's bearer tokens (see :mod:`accounts.tokens`)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django_tenants.utils import get_public_schema_name
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts import tokens
from audit.context import client_ip
from audit.models import Outcome
from audit.services import record

logger = logging.getLogger(__name__)

KEYWORD = b"bearer"
_INVALID = "token-invalid:"


def _count(key: str) -> int:
    # Two minutes: the window's own minute plus slack for clocks and late requests.
    if cache.add(key, 1, 120):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired in between
        cache.add(key, 1, 120)
        return 1


def _is_decade(count: int) -> bool:
    """1, 10, 100, 1000 …"""
    return str(count).rstrip("0") == "1"


def record_token_refused(request, code: str) -> None:
    """Audit requests refused for a bad bearer token, without letting a flood flood the chain.

    Refusals are counted in Redis per (schema, client address, minute). The first
    refusal of an address in a minute is recorded at once, then the 10th, 100th,
    1,000th … with the running count: at most one event per address, minute and
    power of ten. On top of that a schema records at most
    ``PARLEY_AUDIT_TOKEN_INVALID_MAX_PER_MINUTE`` such events a minute (many
    addresses), and the log says when that cap dropped one.
    """
    try:
        ip = client_ip(request) or "unknown"
        minute = int(time.time() // 60)
        window = f"{_INVALID}{minute}:"
        count = _count(f"{window}ip:{ip}")
        if not _is_decade(count):
            return
        if _count(f"{window}events") > settings.PARLEY_AUDIT_TOKEN_INVALID_MAX_PER_MINUTE:
            logger.warning(
                "auth.token.invalid not recorded for request %s: the minute's cap is reached",
                getattr(request, "id", "-"),
            )
            return
        with transaction.atomic():
            record(
                "auth.token.invalid",
                outcome=Outcome.DENIED,
                target_type="url",
                target_id=request.path[:80],
                details={
                    "count": count,
                    "code": code,
                    "minute": datetime.fromtimestamp(minute * 60, tz=UTC).isoformat(),
                    "method": request.method,
                    "path": request.path[:300],
                },
                request=request,
            )
    except Exception:
        # Never turn a 401 into a 500; the log says the event is missing.
        logger.exception(
            "could not record auth.token.invalid for request %s", getattr(request, "id", "-")
        )


def _bearer(request) -> bytes | None:
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != KEYWORD:
        return None
    if len(parts) != 2:
        raise AuthenticationFailed(
            "Send `Authorization: Bearer <access token>`.", code="token_invalid"
        )
    return parts[1]


class TenantJWTAuthentication(BaseAuthentication):
    """``Authorization: Bearer <access token>`` of the tenant the request is for.

    Any bad token is a 401 with ``WWW-Authenticate: Bearer``: a wrong
    signature, another tenant's token, an algorithm other than HS256, a refresh
    token, an expired one, a revoked family, an epoch behind the user's, an
    inactive user. Requests without a tenant (the platform's own domain) never
    accept a token.
    """

    www_authenticate_realm = "api"

    def authenticate(self, request):
        try:
            return self._authenticate(request)
        except AuthenticationFailed as refused:
            codes = refused.get_codes()
            record_token_refused(
                request._request, codes if isinstance(codes, str) else "token_invalid"
            )
            raise

    def _authenticate(self, request):
        raw = _bearer(request)
        if raw is None:
            return None
        tenant = getattr(request._request, "tenant", None)
        schema = connection.schema_name
        if tenant is None or schema == get_public_schema_name() or tenant.schema_name != schema:
            raise AuthenticationFailed(
                "API tokens are accepted at a tenant's address only.", code="token_invalid"
            )
        try:
            raw_token = raw.decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed(tokens.INVALID_DETAIL, code="token_invalid") from None
        try:
            return tokens.authenticate_access(raw_token)
        except tokens.TokenRefused as refused:
            raise AuthenticationFailed(refused.detail, code=refused.code) from None

    def authenticate_header(self, request) -> str | None:
        # Always challenge: a request without valid credentials gets 401 (never
        # 403, which means "signed in, but not allowed").
        return f'Bearer realm="{self.www_authenticate_realm}"'


class TenantJWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.TenantJWTAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from `POST /api/v1/auth/token/` (5 minutes; "
            "refresh with `POST /api/v1/auth/token/refresh/`). Valid at its own tenant only.",
        }
