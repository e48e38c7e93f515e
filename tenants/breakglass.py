"""Break-glass: a platform operator's read-only, time-limited access to one tenant.

The flow:

1. On the console, an operator (fresh step-up) requests access to a tenant with a
   reason and a duration (:func:`break_glass_request`). The tenant's owners are
   mailed. A normal request waits for an owner; an *emergency* is active at
   once and the mail says so.
2. An owner approves (:func:`break_glass_approve`, the clock starts now) or
   denies it on the tenant's ``/settings/break-glass/`` page (fresh step-up).
3. "Open read-only" on the console issues a signed hand-off (:func:`handoff_issue`)
   valid for 60 seconds and once; the tenant's ``/break-glass/enter/`` redeems
   it (:func:`handoff_redeem`) and starts a tenant session that holds nothing
   but the grant's id.
4. :class:`BreakGlassMiddleware` checks the grant on every request of such a
   session (ended, expired, other tenant, tenant not active: the session ends),
   stands the operator in as a read-only :class:`BreakGlassUser`, refuses every
   unsafe method, and records each request in the tenant's trail and the
   platform's.
5. A beat task (:func:`break_glass_expire_due`) marks grants past their
   deadline ``expired``; the middleware enforces the deadline without it.

Grants live in ``public`` (the operator does); their operator is a user of the
public schema, so every read that touches ``operator`` runs in that schema (in a
tenant's search path ``accounts_user`` is the tenant's own table).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.manager import EmptyManager
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.policy import Perm, Role, role_has
from audit.context import SYSTEM, Actor
from audit.models import Outcome
from audit.services import record
from tenants.models import PUBLIC_SCHEMA, BreakGlassGrant, Tenant

logger = logging.getLogger(__name__)

MIN_MINUTES, MAX_MINUTES = 15, 240
MIN_REASON = 10
HANDOFF_SALT = "parley.tenants.break-glass.handoff"
HANDOFF_TTL_SECONDS = 60
SESSION_KEY = "parley_break_glass_grant"
TARGET = "break_glass_grant"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SIGN_OUT_PATH = "/logout/"


# --- who -----------------------------------------------------------------------------------------


def operator_actor(operator) -> Actor:
    return Actor(kind="operator", id=str(operator.pk), name=operator.get_username())


def owner_actor(owner, tenant: Tenant) -> Actor:
    """A tenant user as named in the platform's trail too (ids are per tenant)."""
    return Actor(kind="user", id=str(owner.pk), name=f"{owner.get_username()} ({tenant.slug})")


class BreakGlassUser:
    """The tenant-side identity of an operator under a live grant.

    Never saved: no row for an operator ever exists in a tenant schema. The
    policy table gives it :data:`accounts.policy.BREAK_GLASS_PERMISSIONS` only
    (``user_has`` looks at ``is_break_glass``); Django's own permission checks
    all say no.
    """

    is_break_glass = True
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None
    role = ""
    first_name = ""
    last_name = ""
    last_login = None
    otp_device = None
    _groups = EmptyManager(Group)
    _user_permissions = EmptyManager(Permission)

    def __init__(self, *, grant_id: int, operator_id: int, operator_name: str, expires_at):
        self.grant_id = grant_id
        self.operator_id = operator_id
        self.operator_name = operator_name
        self.expires_at = expires_at
        self.username = self.email = f"{operator_name}@console (break-glass)"

    def __str__(self) -> str:
        return self.username

    @property
    def groups(self):
        return self._groups

    @property
    def user_permissions(self):
        return self._user_permissions

    def get_username(self) -> str:
        return self.username

    def get_full_name(self) -> str:
        return self.username

    def get_short_name(self) -> str:
        return self.operator_name

    def get_role_display(self) -> str:
        return "Break-glass, read-only"

    def is_verified(self) -> bool:
        # The hand-off needed a fresh OTP on the console.
        return True

    def get_all_permissions(self, obj=None) -> set[str]:
        return set()

    def get_user_permissions(self, obj=None) -> set[str]:
        return set()

    def get_group_permissions(self, obj=None) -> set[str]:
        return set()

    def has_perm(self, perm, obj=None) -> bool:
        return False

    def has_perms(self, perm_list, obj=None) -> bool:
        return False

    def has_module_perms(self, module) -> bool:
        return False

    def save(self, *args, **kwargs):
        raise TypeError("A break-glass identity is never saved.")

    def delete(self, *args, **kwargs):
        raise TypeError("A break-glass identity is never saved.")


@dataclass(frozen=True)
class BreakGlassSession:
    """What templates need to know about the request's break-glass session (the banner)."""

    grant_id: int
    operator: str
    expires_at: datetime


# --- reads ---------------------------------------------------------------------------------------


def _with_operator(qs: QuerySet[BreakGlassGrant]) -> list[BreakGlassGrant]:
    """Evaluate grants with their operator and tenant, read in ``public``."""
    with schema_context(PUBLIC_SCHEMA):
        return list(qs.select_related("operator", "tenant"))


def grant_list_for_operator(*, operator, tenant: Tenant, limit: int = 20) -> list[BreakGlassGrant]:
    return _with_operator(
        BreakGlassGrant.objects.filter(operator=operator, tenant=tenant).order_by("-id")[:limit]
    )


def grant_list_for_tenant(*, tenant: Tenant, limit: int = 50) -> list[BreakGlassGrant]:
    return _with_operator(BreakGlassGrant.objects.filter(tenant=tenant).order_by("-id")[:limit])


def grant_notices_for_tenant(*, tenant: Tenant) -> list[BreakGlassGrant]:
    """Grants an owner should know about now: waiting for a decision, or live."""
    return _with_operator(
        BreakGlassGrant.objects.filter(tenant=tenant)
        .filter(
            Q(status=BreakGlassGrant.Status.PENDING)
            | Q(status=BreakGlassGrant.Status.ACTIVE, expires_at__gt=timezone.now())
        )
        .order_by("-id")
    )


def grant_get_for_operator(*, operator, tenant: Tenant, grant_id: int) -> BreakGlassGrant:
    """The operator's own grant on this tenant, or 404."""
    found = _with_operator(
        BreakGlassGrant.objects.filter(pk=grant_id, operator=operator, tenant=tenant)
    )
    if not found:
        raise Http404("No such break-glass grant.")
    return found[0]


def grant_get_for_tenant(*, tenant: Tenant, grant_id: int) -> BreakGlassGrant:
    """A grant on this tenant (for its owners), or 404: other tenants' grants do not exist here."""
    found = _with_operator(BreakGlassGrant.objects.filter(pk=grant_id, tenant=tenant))
    if not found:
        raise Http404("No such break-glass grant.")
    return found[0]


def _approver_roles() -> list[str]:
    return [role for role in Role.values if role_has(role, Perm.BREAK_GLASS_APPROVE)]


def owner_emails(tenant: Tenant) -> list[str]:
    """E-mail addresses of the tenant's active users who may approve break-glass."""
    from django.contrib.auth import get_user_model

    with schema_context(tenant.schema_name):
        return list(
            get_user_model()
            .objects.filter(is_active=True, role__in=_approver_roles())
            .exclude(email="")
            .order_by("email")
            .values_list("email", flat=True)
        )


# --- audit on both sides -------------------------------------------------------------------------


def _tenant_schema_exists(tenant: Tenant) -> bool:
    return tenant.status not in (Tenant.Status.OFFBOARDED,) and not tenant.is_public


def _record_both(
    action: str,
    *,
    grant: BreakGlassGrant,
    tenant: Tenant,
    actor: Actor,
    outcome: str = Outcome.ALLOWED,
    details: dict[str, Any] | None = None,
    request=None,
) -> None:
    """The same event in the platform's trail and the tenant's, in the caller's transaction."""
    payload = {
        "grant": grant.pk,
        "tenant": tenant.slug,
        "operator_id": grant.operator_id,
        **(details or {}),
    }
    kwargs = {
        "actor": actor,
        "outcome": outcome,
        "target_type": TARGET,
        "target_id": grant.pk,
        "details": payload,
        "request": request,
    }
    with schema_context(PUBLIC_SCHEMA):
        record(action, **kwargs)
    if _tenant_schema_exists(tenant):
        with schema_context(tenant.schema_name):
            record(action, **kwargs)


# --- state changes -------------------------------------------------------------------------------


class BreakGlassRequestForm(forms.Form):
    reason = forms.CharField(
        min_length=MIN_REASON,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why you need to look inside this workspace (the owners read it).",
    )
    minutes = forms.IntegerField(
        min_value=MIN_MINUTES,
        max_value=MAX_MINUTES,
        initial=60,
        label="Duration (minutes)",
        help_text=f"{MIN_MINUTES}–{MAX_MINUTES}; the clock starts when access is granted.",
    )
    emergency = forms.BooleanField(
        required=False,
        label="Emergency: start now and notify the owners",
    )


def break_glass_request(
    *, operator, tenant: Tenant, reason: str, minutes: int, emergency: bool = False
) -> BreakGlassGrant:
    """Record a request; an emergency is active at once. Owners are mailed once it commits."""
    reason = " ".join((reason or "").split())
    if len(reason) < MIN_REASON or len(reason) > 500:
        raise ValidationError(
            "Give a reason of %(min)d to 500 characters.",
            code="reason",
            params={"min": MIN_REASON},
        )
    if not MIN_MINUTES <= int(minutes) <= MAX_MINUTES:
        raise ValidationError(
            "The duration must be %(min)d to %(max)d minutes.",
            code="minutes",
            params={"min": MIN_MINUTES, "max": MAX_MINUTES},
        )
    if tenant.is_public or tenant.is_template or not tenant.is_active:
        raise ValidationError(
            "Break-glass access is only for active tenants.", code="tenant_not_active"
        )
    now = timezone.now()
    with transaction.atomic():
        # One open grant per operator and tenant: the row lock on the tenant
        # keeps two concurrent requests from both passing the check.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        open_grant = BreakGlassGrant.objects.filter(operator=operator, tenant=tenant).filter(
            Q(status=BreakGlassGrant.Status.PENDING)
            | Q(status=BreakGlassGrant.Status.ACTIVE, expires_at__gt=now)
        )
        if open_grant.exists():
            raise ValidationError(
                "You already have a pending or active break-glass grant for %(slug)s; "
                "use it or end it first.",
                code="open_grant",
                params={"slug": tenant.slug},
            )
        grant = BreakGlassGrant.objects.create(
            operator=operator,
            tenant=tenant,
            reason=reason,
            minutes=int(minutes),
            emergency=emergency,
            status=BreakGlassGrant.Status.ACTIVE if emergency else BreakGlassGrant.Status.PENDING,
            requested_at=now,
            expires_at=now + timedelta(minutes=int(minutes)) if emergency else None,
        )
        details = {"reason": reason, "minutes": grant.minutes, "emergency": emergency}
        if emergency:
            details["expires_at"] = grant.expires_at.isoformat()
        _record_both(
            "break_glass.emergency_declared" if emergency else "break_glass.requested",
            grant=grant,
            tenant=tenant,
            actor=operator_actor(operator),
            details=details,
        )
        recipients = owner_emails(tenant)
        grant_id = grant.pk
        transaction.on_commit(lambda: _notify_owners(grant_id, recipients))
    return grant


def _notify_owners(grant_id: int, recipients: list[str]) -> None:
    """Mail each owner (after commit: the grant exists whatever the mail server does)."""
    from django.core.mail import send_mail

    from tenants.services import tenant_base_url

    with schema_context(PUBLIC_SCHEMA):
        grant = BreakGlassGrant.objects.select_related("operator", "tenant").get(pk=grant_id)
    tenant = grant.tenant
    page = f"{tenant_base_url(tenant)}/settings/break-glass/"
    if grant.emergency:
        subject = f"[{tenant.name}] Emergency break-glass access by a Parley operator"
        what = (
            f"A Parley operator ({grant.operator_name}) declared an emergency and has "
            f"read-only access to {tenant.name} now, until "
            f"{grant.expires_at:%Y-%m-%d %H:%M} UTC ({grant.minutes} minutes).\n\n"
            f"You can end it at once here:\n{page}\n"
        )
    else:
        subject = f"[{tenant.name}] A Parley operator asks for break-glass access"
        what = (
            f"A Parley operator ({grant.operator_name}) asks for read-only access to "
            f"{tenant.name} for {grant.minutes} minutes. Nothing happens until an owner "
            f"approves.\n\nApprove or deny it here:\n{page}\n"
        )
    body = f"{what}\nReason given: {grant.reason}\n\nEvery request made under it is in your audit trail."
    for email in recipients:
        try:
            send_mail(subject=subject, message=body, from_email=None, recipient_list=[email])
        except Exception:
            logger.exception("break-glass notice for grant %s could not be mailed", grant_id)


def _decide(
    grant: BreakGlassGrant,
    *,
    from_statuses: tuple[str, ...],
    action: str,
    actor: Actor,
    details: dict[str, Any] | None = None,
    **fields,
) -> BreakGlassGrant:
    """Conditional UPDATE from ``from_statuses`` plus its events; a concurrent change is a conflict."""
    with transaction.atomic():
        with schema_context(PUBLIC_SCHEMA):
            changed = BreakGlassGrant.objects.filter(pk=grant.pk, status__in=from_statuses).update(
                **fields
            )
        if changed != 1:
            raise ValidationError(
                "This grant changed meanwhile (decided, ended or expired); reload the page.",
                code="conflict",
            )
        for name, value in fields.items():
            setattr(grant, name, value)
        _record_both(action, grant=grant, tenant=grant.tenant, actor=actor, details=details)
    return grant


def break_glass_approve(*, grant: BreakGlassGrant, owner) -> BreakGlassGrant:
    """An owner approves: active from now for the requested minutes."""
    now = timezone.now()
    expires_at = now + timedelta(minutes=grant.minutes)
    return _decide(
        grant,
        from_statuses=(BreakGlassGrant.Status.PENDING,),
        action="break_glass.approved",
        actor=owner_actor(owner, grant.tenant),
        details={"decided_by": owner.email, "expires_at": expires_at.isoformat()},
        status=BreakGlassGrant.Status.ACTIVE,
        decided_by=owner.email,
        decided_at=now,
        expires_at=expires_at,
    )


def break_glass_deny(*, grant: BreakGlassGrant, owner) -> BreakGlassGrant:
    return _decide(
        grant,
        from_statuses=(BreakGlassGrant.Status.PENDING,),
        action="break_glass.denied",
        actor=owner_actor(owner, grant.tenant),
        details={"decided_by": owner.email},
        status=BreakGlassGrant.Status.DENIED,
        decided_by=owner.email,
        decided_at=timezone.now(),
    )


def break_glass_end(*, grant: BreakGlassGrant, actor: Actor, ended_by: str) -> BreakGlassGrant:
    """End a pending or active grant now (its operator withdraws it, or an owner ends it).

    ``ended_by`` is how the pages name who ended it (the operator's or the
    owner's e-mail). Sessions under it end on their next request.
    """
    now = timezone.now()
    return _decide(
        grant,
        from_statuses=(BreakGlassGrant.Status.PENDING, BreakGlassGrant.Status.ACTIVE),
        action="break_glass.ended",
        actor=actor,
        details={"was": grant.status, "ended_by": ended_by[:254]},
        status=BreakGlassGrant.Status.ENDED,
        ended_by=ended_by[:254],
        expires_at=min(grant.expires_at, now) if grant.expires_at else now,
    )


def break_glass_expire(*, grant_id: int) -> bool:
    """Mark one active grant past its deadline ``expired`` (once); True when this call did."""
    with transaction.atomic():
        with schema_context(PUBLIC_SCHEMA):
            changed = BreakGlassGrant.objects.filter(
                pk=grant_id, status=BreakGlassGrant.Status.ACTIVE, expires_at__lte=timezone.now()
            ).update(status=BreakGlassGrant.Status.EXPIRED)
            if changed != 1:
                return False
            grant = BreakGlassGrant.objects.select_related("tenant").get(pk=grant_id)
        _record_both(
            "break_glass.expired",
            grant=grant,
            tenant=grant.tenant,
            actor=SYSTEM,
            details={"expires_at": grant.expires_at.isoformat()},
            # The deadline ended it, not whoever's request noticed.
            request=None,
        )
    return True


def break_glass_expire_due() -> int:
    """Every active grant past its deadline becomes ``expired``; returns how many."""
    with schema_context(PUBLIC_SCHEMA):
        due = list(
            BreakGlassGrant.objects.filter(
                status=BreakGlassGrant.Status.ACTIVE, expires_at__lte=timezone.now()
            ).values_list("id", flat=True)
        )
    return sum(1 for grant_id in due if break_glass_expire(grant_id=grant_id))


# --- hand-off: console → tenant host -------------------------------------------------------------


class HandoffError(Exception):
    """A hand-off token that must not open a session; ``str()`` says why (for the trail)."""


def handoff_issue(*, grant: BreakGlassGrant, operator) -> str:
    """A URL on the tenant's host that opens a break-glass session once, within 60 seconds."""
    from tenants.services import tenant_base_url

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
    from django.middleware.csrf import rotate_token

    request.session.flush()  # drops whatever session this browser had here; new key on save
    request.session[SESSION_KEY] = grant.pk
    request.session.set_expiry(grant.expires_at)  # the cookie dies with the grant, too
    rotate_token(request)
    _record_both(
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


# --- every request of a break-glass session ------------------------------------------------------


def _json_or_page(request, *, status: int, code: str, detail: str, template: str, context=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"code": code, "detail": detail}, status=status)
    return render(request, template, context or {}, status=status)


def _console_url(path: str = "/") -> str:
    port = settings.PARLEY_PUBLIC_PORT
    default_port = 443 if settings.PARLEY_PUBLIC_SCHEME == "https" else 80
    suffix = "" if port == default_port else f":{port}"
    return f"{settings.PARLEY_PUBLIC_SCHEME}://{settings.PARLEY_BASE_DOMAIN}{suffix}{path}"


class BreakGlassMiddleware:
    """For a session opened by a hand-off: the grant decides, on every request.

    Placed after authentication, revocation and the MFA gate (all of which see
    an anonymous user: the session has no ``_auth_user_id``). Fails closed:
    anything odd about the session or the grant ends the session.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        session = getattr(request, "session", None)
        if tenant is None or tenant.is_public or session is None or SESSION_KEY not in session:
            return self.get_response(request)
        grant_id = session.get(SESSION_KEY)
        grant = None
        if isinstance(grant_id, int) and "_auth_user_id" not in session:
            with schema_context(PUBLIC_SCHEMA):
                grant = (
                    BreakGlassGrant.objects.select_related("operator")
                    .filter(pk=grant_id, tenant_id=tenant.pk)
                    .first()
                )
        if (
            grant is None
            or not grant.is_live
            or not grant.operator.is_active  # a deactivated operator keeps nothing
            or not tenant.is_active
        ):
            if (
                grant is not None
                and grant.status == BreakGlassGrant.Status.ACTIVE
                and grant.expires_at is not None
                and grant.expires_at <= timezone.now()
            ):
                break_glass_expire(grant_id=grant.pk)
            session.flush()
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {
                        "code": "break_glass_ended",
                        "detail": "The break-glass access has ended; request it again on the console.",
                    },
                    status=401,
                )
            response = redirect("/login/")
            if request.headers.get("HX-Request"):
                response["HX-Redirect"] = "/login/"
            return response

        operator = grant.operator
        user = BreakGlassUser(
            grant_id=grant.pk,
            operator_id=operator.pk,
            operator_name=operator.get_username(),
            expires_at=grant.expires_at,
        )
        request.user = user

        async def auser():
            return user

        request.auser = auser
        request.break_glass = BreakGlassSession(
            grant_id=grant.pk, operator=operator.get_username(), expires_at=grant.expires_at
        )
        grant.tenant = tenant
        actor = operator_actor(operator)
        signing_out = request.method == "POST" and request.path == _SIGN_OUT_PATH
        allowed = request.method in _SAFE_METHODS or signing_out
        with transaction.atomic():
            _record_both(
                "break_glass.request",
                grant=grant,
                tenant=tenant,
                actor=actor,
                outcome=Outcome.ALLOWED if allowed else Outcome.DENIED,
                details={"method": request.method, "path": request.path[:300]},
                request=request,
            )
        if not allowed:
            response = _json_or_page(
                request,
                status=403,
                code="break_glass_read_only",
                detail="Break-glass access is read-only.",
                template="breakglass/read_only.html",
            )
            response._audit_recorded = True  # break_glass.request (denied) is the record
            return response
        if signing_out:
            return self._sign_out(request)
        return self.get_response(request)

    @staticmethod
    def _sign_out(request):
        """End this session (not the grant) and go back to the console."""
        from django.middleware.csrf import CsrfViewMiddleware

        def _view(_request):  # pragma: no cover - never called
            return None

        refused = CsrfViewMiddleware(_view).process_view(request, _view, (), {})
        if refused is not None:
            return refused
        slug = request.tenant.slug
        request.session.flush()
        return redirect(_console_url(f"/tenants/{slug}/"))


def template_context(request) -> dict[str, Any]:
    """For ``parley.context_processors``: the banner, and the owners' notice (read lazily)."""
    tenant = getattr(request, "tenant", None)
    if tenant is None or getattr(tenant, "schema_name", PUBLIC_SCHEMA) == PUBLIC_SCHEMA:
        return {"parley_break_glass": None, "break_glass_notices": ()}

    def notices() -> list[BreakGlassGrant]:
        from accounts.policy import user_has

        if not user_has(getattr(request, "user", None), Perm.BREAK_GLASS_APPROVE):
            return []
        return grant_notices_for_tenant(tenant=tenant)

    return {
        "parley_break_glass": getattr(request, "break_glass", None),
        # A callable: templates call it only where the notice is shown (home page).
        "break_glass_notices": notices,
    }
