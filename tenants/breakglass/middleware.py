"""Every request of a break-glass session: the grant decides, unsafe methods are refused."""

from __future__ import annotations

from django.db import transaction
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.policy import BREAK_GLASS_READ_ONLY
from audit.models import Outcome
from parley.base_url import console_url
from tenants.breakglass.handoff import SESSION_KEY
from tenants.breakglass.identity import BreakGlassSession, BreakGlassUser, operator_actor
from tenants.breakglass.services import break_glass_expire
from tenants.breakglass.trail import record_both
from tenants.models import PUBLIC_SCHEMA, BreakGlassGrant

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SIGN_OUT_PATH = "/logout/"


def _json_or_page(request, *, status: int, code: str, detail: str, template: str, context=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"code": code, "detail": detail}, status=status)
    return render(request, template, context or {}, status=status)


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
            record_both(
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
                detail=BREAK_GLASS_READ_ONLY,
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
        def _view(_request):  # pragma: no cover - never called
            return None

        refused = CsrfViewMiddleware(_view).process_view(request, _view, (), {})
        if refused is not None:
            return refused
        slug = request.tenant.slug
        request.session.flush()
        return redirect(console_url(f"/tenants/{slug}/"))
