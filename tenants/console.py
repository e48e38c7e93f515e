"""The platform console: pages on the bare domain for platform operators.

Every active user of the public schema is a platform operator; tenant users
do not exist here (their tables live in their own schemas).
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.forms import ThrottledAuthenticationForm
from accounts.permissions import step_up_required
from accounts.throttles import LoginRateLimitMixin
from parley.forms import add_validation_error
from tenants import breakglass, selectors, services
from tenants.forms import TenantCreateForm, TenantOffboardForm, TenantSuspendForm
from tenants.models import PUBLIC_SCHEMA, Tenant


def operator_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if getattr(request, "tenant", None) is None or request.tenant.schema_name != PUBLIC_SCHEMA:
            raise PermissionDenied
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_active:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


class ConsoleLoginView(LoginRateLimitMixin, auth_views.LoginView):
    template_name = "console/login.html"
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True
    next_page = "console:tenant_list"

    def get_default_redirect_url(self):
        from django.urls import reverse

        return reverse("console:tenant_list")


class ConsoleLogoutView(auth_views.LogoutView):
    next_page = "login"


@operator_required
def tenant_list(request):
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant = services.tenant_request(**form.cleaned_data)
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            messages.success(
                request, f"Tenant {tenant.slug} requested; its workspace is being created."
            )
            return redirect("console:tenant_detail", slug=tenant.slug)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "console/tenant_list.html",
        {"tenants": selectors.tenant_list(), "form": form},
        status=status,
    )


@operator_required
def tenant_detail(request, slug: str):
    tenant = selectors.tenant_get(slug=slug)
    if request.htmx and tenant.status != Tenant.Status.PROVISIONING:
        # Only a page showing "being created" polls. Provisioning is over: say so
        # and redraw the whole page (banner, actions, break-glass form), not just
        # the status block.
        if tenant.status == Tenant.Status.ACTIVE:
            messages.success(request, f"Tenant {tenant.slug} is ready.")
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    template = "console/_tenant_status.html" if request.htmx else "console/tenant_detail.html"
    return render(
        request,
        template,
        {
            "tenant": tenant,
            "base_url": services.tenant_base_url(tenant),
            # Each form names its fields' ids apart: both have a "reason".
            "suspend_form": TenantSuspendForm(auto_id="suspend_%s"),
            "offboard_form": TenantOffboardForm(auto_id="offboard_%s"),
            "break_glass_form": breakglass.BreakGlassRequestForm(auto_id="break_glass_%s"),
            "break_glass_grants": breakglass.grant_list_for_operator(
                operator=request.user, tenant=tenant
            ),
        },
    )


@operator_required
@require_POST
@step_up_required
def tenant_suspend(request, slug: str):
    tenant = selectors.tenant_get(slug=slug)
    form = TenantSuspendForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The reason is too long (300 characters at most).")
        return redirect("console:tenant_detail", slug=slug)
    try:
        services.tenant_suspend(tenant=tenant, reason=form.cleaned_data["reason"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request, f"Tenant {slug} is suspended: its users, API clients and webhooks are refused."
        )
    return redirect("console:tenant_detail", slug=slug)


@operator_required
@require_POST
def tenant_reactivate(request, slug: str):
    tenant = selectors.tenant_get(slug=slug)
    try:
        services.tenant_reactivate(tenant=tenant)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Tenant {slug} is active again.")
    return redirect("console:tenant_detail", slug=slug)


@operator_required
@require_POST
@step_up_required
def tenant_offboard(request, slug: str):
    tenant = selectors.tenant_get(slug=slug)
    form = TenantOffboardForm(request.POST)
    if not form.is_valid() or form.cleaned_data["confirm"] != tenant.slug:
        messages.error(request, "Not offboarded: type the tenant's slug exactly to confirm.")
        return redirect("console:tenant_detail", slug=slug)
    try:
        tenant = services.tenant_offboard(tenant=tenant)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"Tenant {slug} is closed. Its schema and keys are destroyed on "
            f"{tenant.offboard_after:%Y-%m-%d %H:%M} UTC; nothing was exported.",
        )
    return redirect("console:tenant_detail", slug=slug)
