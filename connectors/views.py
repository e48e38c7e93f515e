"""Credential pages: list (metadata only), add, replace, test, delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.permissions import permission_required, step_up_required
from accounts.policy import Perm
from connectors import selectors, services
from connectors.forms import CredentialForm, ReplaceSecretForm
from parley.forms import add_validation_error
from parley.keyring.providers import KeyringError


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
def credential_list(request):
    form = CredentialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            credential = services.credential_set(**form.cleaned_data)
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            messages.success(
                request, f"Credential {credential.name} stored (encrypted, write-only)."
            )
            return redirect("connectors:credentials")
    return render(
        request,
        "connectors/credentials.html",
        {
            "credentials": selectors.credential_list(),
            "due": selectors.credentials_due(),
            "form": form,
            "replace_form": ReplaceSecretForm(),
            "now": timezone.now(),
        },
        status=400 if request.method == "POST" else 200,
    )


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
def credential_replace(request, credential_id: int):
    credential = selectors.credential_get(credential_id=credential_id)
    form = ReplaceSecretForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Not replaced: " + " ".join(e for errs in form.errors.values() for e in errs)
        )
    else:
        try:
            services.credential_replace(credential=credential, secret=form.cleaned_data["secret"])
        except ValidationError as exc:
            messages.error(request, "Not replaced: " + " ".join(exc.messages))
        else:
            messages.success(
                request, f"Secret of {credential.name} replaced; next rotation due in 90 days."
            )
    return redirect("connectors:credentials")


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
def credential_test(request, credential_id: int):
    credential = selectors.credential_get(credential_id=credential_id)
    try:
        services.credential_test(credential=credential)
    except KeyringError as exc:
        messages.error(
            request,
            f"{credential.name}: the stored secret cannot be decrypted ({type(exc).__name__}).",
        )
    else:
        messages.success(
            request, f"{credential.name}: the stored secret decrypts with this workspace's key."
        )
    return redirect("connectors:credentials")


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
def credential_delete(request, credential_id: int):
    credential = selectors.credential_get(credential_id=credential_id)
    try:
        services.credential_delete(credential=credential)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Credential {credential.name} deleted.")
    return redirect("connectors:credentials")
