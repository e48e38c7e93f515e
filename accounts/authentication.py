"""DRF authentication by the tenant's bearer tokens (see :mod:`accounts.tokens`)."""

from __future__ import annotations

from django.db import connection
from django_tenants.utils import get_public_schema_name
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts import tokens
from audit.models import Outcome
from audit.services import record_per_source

KEYWORD = b"bearer"


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
            # Audited per address and minute (a flood of bad tokens writes a few events).
            record_per_source(
                "auth.token.invalid",
                request=request._request,
                outcome=Outcome.DENIED,
                details={"code": codes if isinstance(codes, str) else "token_invalid"},
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
