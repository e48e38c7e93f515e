"""The AI provider page (owner, admin, integrator: ``connectors.manage``, fresh step-up):
list, add, edit, test, delete. The key is write-only: only its last 4 characters show."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.permissions import permission_required, step_up_required
from accounts.policy import Perm
from connectors.ai import selectors, services
from connectors.ai.forms import AiProviderForm
from parley.forms import add_validation_error


def _page(request, *, form=None, status=200):
    return render(
        request,
        "connectors/ai_providers.html",
        {"providers": selectors.ai_provider_list(), "form": form or AiProviderForm()},
        status=status,
    )


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@never_cache
def provider_list(request):
    if request.method != "POST":
        return _page(request)
    form = AiProviderForm(request.POST)
    if form.is_valid():
        try:
            provider = services.ai_provider_create(by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            messages.success(request, f"AI provider {provider.name} saved; test it below.")
            return redirect("connectors:ai_providers")
    return _page(request, form=form, status=400)


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@never_cache
def provider_edit(request, provider_id: int):
    provider = selectors.ai_provider_get(provider_id=provider_id)
    if request.method != "POST":
        initial = {f: getattr(provider, f) for f in services.FIELDS}
        form = AiProviderForm(initial=initial, editing=True)
        return render(
            request, "connectors/ai_provider_edit.html", {"provider": provider, "form": form}
        )
    form = AiProviderForm(request.POST, editing=True)
    if form.is_valid():
        try:
            services.ai_provider_update(by=request.user, provider=provider, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            messages.success(request, f"AI provider {form.cleaned_data['name']} updated.")
            return redirect("connectors:ai_providers")
    return render(
        request,
        "connectors/ai_provider_edit.html",
        {"provider": provider, "form": form},
        status=400,
    )


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
def provider_test(request, provider_id: int):
    provider = selectors.ai_provider_get(provider_id=provider_id)
    try:
        result = services.ai_provider_test(by=request.user, provider=provider)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        if result.ok:
            messages.success(request, f"{provider.name}: the provider answered.")
        else:
            messages.error(request, f"{provider.name}: the test failed ({result.code}).")
    return redirect("connectors:ai_providers")


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
def provider_delete(request, provider_id: int):
    provider = selectors.ai_provider_get(provider_id=provider_id)
    services.ai_provider_delete(by=request.user, provider=provider)
    messages.success(request, f"AI provider {provider.name} deleted, with its key.")
    return redirect("connectors:ai_providers")
