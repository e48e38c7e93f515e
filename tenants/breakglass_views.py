"""Break-glass pages: the operator's actions on the console, the owners' page and the
hand-off landing on the tenant's host. The logic lives in ``tenants.breakglass``."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import permission_required, step_up_required
from accounts.policy import Perm
from tenants import breakglass, selectors
from tenants.console import operator_required

# --- console (bare domain, operators) ------------------------------------------------------------


@operator_required
@step_up_required
@require_POST
def console_request(request, slug: str):
    tenant = selectors.tenant_get(slug=slug)
    form = breakglass.BreakGlassRequestForm(request.POST)
    if not form.is_valid():
        problems = " ".join(e for errors in form.errors.values() for e in errors)
        messages.error(request, f"Break-glass not requested: {problems}")
        return redirect("console:tenant_detail", slug=slug)
    try:
        grant = breakglass.break_glass_request(
            operator=request.user, tenant=tenant, **form.cleaned_data
        )
    except ValidationError as exc:
        messages.error(request, "Break-glass not requested: " + " ".join(exc.messages))
        return redirect("console:tenant_detail", slug=slug)
    if grant.emergency:
        messages.success(
            request,
            f"Emergency declared: read-only access to {slug} until "
            f"{grant.expires_at:%H:%M} UTC. The owners were notified.",
        )
    else:
        messages.success(
            request, f"Break-glass requested; {slug}'s owners were asked to approve it."
        )
    return redirect("console:tenant_detail", slug=slug)


@operator_required
@step_up_required
@require_POST
def console_open(request, slug: str, grant_id: int):
    """Hand off to the tenant's host: a signed, single-use link valid for 60 seconds.

    Not a redirect: the console's CSP (``form-action 'self'``) covers redirects
    after a form POST, so the browser would refuse one to the tenant's host. The
    answer is a page that navigates there at once (and links there), never
    cached, never sending the console's address along.
    """
    tenant = selectors.tenant_get(slug=slug)
    grant = breakglass.grant_get_for_operator(
        operator=request.user, tenant=tenant, grant_id=grant_id
    )
    try:
        url = breakglass.handoff_issue(grant=grant, operator=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("console:tenant_detail", slug=slug)
    response = render(request, "console/handoff.html", {"tenant": tenant, "url": url})
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "no-referrer"
    return response


@operator_required
@require_POST
def console_end(request, slug: str, grant_id: int):
    """End (or withdraw) one's own grant now; no step-up needed to give access back."""
    tenant = selectors.tenant_get(slug=slug)
    grant = breakglass.grant_get_for_operator(
        operator=request.user, tenant=tenant, grant_id=grant_id
    )
    try:
        breakglass.break_glass_end(
            grant=grant,
            actor=breakglass.operator_actor(request.user),
            ended_by=grant.operator_name,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Break-glass access to {slug} ended.")
    return redirect("console:tenant_detail", slug=slug)


# --- tenant host -------------------------------------------------------------------------------


@never_cache
@require_GET
def enter(request):
    """Redeem a hand-off from the console: a fresh session under the grant, or 403."""
    try:
        grant = breakglass.handoff_redeem(token=request.GET.get("token", ""), tenant=request.tenant)
    except breakglass.HandoffError as exc:
        breakglass.record_refused_entry(request, reason=str(exc), tenant=request.tenant)
        response = render(request, "breakglass/enter_refused.html", status=403)
        response._audit_recorded = True  # break_glass.entered (denied) is the record
        return response
    breakglass.session_start(request, grant)
    return redirect("/")


@permission_required(Perm.BREAK_GLASS_APPROVE)
def owner_list(request):
    return render(
        request,
        "breakglass/owner_list.html",
        {"grants": breakglass.grant_list_for_tenant(tenant=request.tenant)},
    )


def _owner_decision(request, grant_id: int, action) -> None:
    grant = breakglass.grant_get_for_tenant(tenant=request.tenant, grant_id=grant_id)
    try:
        action(grant)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return
    messages.success(request, f"Break-glass #{grant.pk} is {grant.get_status_display().lower()}.")


@permission_required(Perm.BREAK_GLASS_APPROVE)
@step_up_required
@require_POST
def owner_approve(request, grant_id: int):
    _owner_decision(
        request,
        grant_id,
        lambda grant: breakglass.break_glass_approve(grant=grant, owner=request.user),
    )
    return redirect("break_glass:owner_list")


@permission_required(Perm.BREAK_GLASS_APPROVE)
@step_up_required
@require_POST
def owner_deny(request, grant_id: int):
    _owner_decision(
        request,
        grant_id,
        lambda grant: breakglass.break_glass_deny(grant=grant, owner=request.user),
    )
    return redirect("break_glass:owner_list")


@permission_required(Perm.BREAK_GLASS_APPROVE)
@require_POST
def owner_end(request, grant_id: int):
    """Ending access is never held up by step-up."""
    _owner_decision(
        request,
        grant_id,
        lambda grant: breakglass.break_glass_end(
            grant=grant,
            actor=breakglass.owner_actor(request.user, request.tenant),
            ended_by=request.user.email or request.user.get_username(),
        ),
    )
    return redirect("break_glass:owner_list")
