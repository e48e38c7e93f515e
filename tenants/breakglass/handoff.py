"""Console → tenant host: a signed one-time hand-off that starts a break-glass session."""

from __future__ import annotations

import secrets

from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.middleware.csrf import rotate_token
from django_tenants.utils import schema_context

from audit.context import Actor
from audit.models import Outcome
from audit.services import record
from parley.base_url import tenant_base_url
from tenants.breakglass.identity import operator_actor
from tenants.breakglass.trail import TARGET, record_both
from tenants.models import PUBLIC_SCHEMA, BreakGlassGrant, Tenant

HANDOFF_SALT = "parley.tenants.break-glass.handoff"
HANDOFF_TTL_SECONDS = 60
SESSION_KEY = "parley_break_glass_grant"


class HandoffError(Exception):
    """A hand-off token that must not open a session; ``str()`` says why (for the trail)."""


def handoff_issue(*, grant: BreakGlassGrant, operator) -> str:
    """A URL on the tenant's host that opens a break-glass session once, within 60 seconds."""
    if grant.operator_id != operator.pk or not grant.is_live or not grant.tenant.is_active:
        raise ValidationError(
            "This grant is not active (pending, ended or expired).", code="not_live"
        )
    token = signing.dumps(
        {"g": grant.pk, "t": grant.tenant_id, "o": operator.pk, "n": secrets.token_urlsafe(16)},
        salt=HANDOFF_SALT,
    )
    return f"{tenant_base_url(grant.tenant)}/break-glass/enter/?token={token}"


def handoff_redeem(*, token: str, tenant: Tenant) -> BreakGlassGrant:
    """The live grant a hand-off token opens at ``tenant``, consuming the token; HandoffError otherwise."""
    try:
        data = signing.loads(token or "", salt=HANDOFF_SALT, max_age=HANDOFF_TTL_SECONDS)
    except signing.SignatureExpired as exc:
        raise HandoffError("expired") from exc
    except signing.BadSignature as exc:
        raise HandoffError("bad_signature") from exc
    nonce = data.get("n") if isinstance(data, dict) else None
    if not isinstance(nonce, str) or not nonce:
        raise HandoffError("bad_signature")
    with schema_context(PUBLIC_SCHEMA):
        # Any presentation burns the token, even at the wrong host. One global
        # namespace for nonces (cache keys otherwise carry the schema).
        if not cache.add(f"break-glass-handoff:{nonce}", 1, HANDOFF_TTL_SECONDS * 2):
            raise HandoffError("replayed")
        if data.get("t") != tenant.pk:
            raise HandoffError("other_tenant")
        grant = (
            BreakGlassGrant.objects.select_related("operator", "tenant")
            .filter(pk=data.get("g"), tenant_id=tenant.pk, operator_id=data.get("o"))
            .first()
        )
    if grant is None or not grant.is_live or not grant.operator.is_active or not tenant.is_active:
        raise HandoffError("not_live")
    return grant


def session_start(request, grant: BreakGlassGrant) -> None:
    """A fresh tenant session (new key, nothing of any earlier one) holding only the grant."""
    request.session.flush()  # drops whatever session this browser had here; new key on save
    request.session[SESSION_KEY] = grant.pk
    request.session.set_expiry(grant.expires_at)  # the cookie dies with the grant, too
    rotate_token(request)
    record_both(
        "break_glass.entered",
        grant=grant,
        tenant=grant.tenant,
        actor=operator_actor(grant.operator),
        details={"expires_at": grant.expires_at.isoformat()},
        request=request,
    )


def record_refused_entry(request, *, reason: str, tenant: Tenant) -> None:
    with schema_context(tenant.schema_name):
        record(
            "break_glass.entered",
            outcome=Outcome.DENIED,
            actor=Actor(kind="anonymous"),
            target_type=TARGET,
            details={"refused": reason},
            request=request,
        )
