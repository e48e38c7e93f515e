"""The workspace's Security page: key versions, rotation, re-encryption progress."""

from __future__ import annotations

from django.contrib import messages
from django.db import connection
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import permission_required, step_up_required
from accounts.policy import Perm
from parley.keyring import signing
from parley.keyring.services import keys_rotate, token_key_rotate
from parley.models import RekeyJob, WrappedKey


def _context():
    schema = connection.schema_name
    return {
        "keys": WrappedKey.objects.filter(schema_name=schema).exclude(
            state=WrappedKey.State.DESTROYED
        ),
        "token_grace_hours": round(signing.grace_seconds() / 3600, 1),
        "jobs": RekeyJob.objects.filter(schema_name=schema)[:10],
        "running": RekeyJob.objects.filter(
            schema_name=schema, state__in=[RekeyJob.State.PENDING, RekeyJob.State.RUNNING]
        ).exists(),
    }


@permission_required(Perm.KEYS_ROTATE)
def security(request):
    template = "keyring/_jobs.html" if request.htmx else "keyring/security.html"
    return render(request, template, _context())


@permission_required(Perm.KEYS_ROTATE)
@require_POST
@step_up_required
def rotate(request):
    jobs = keys_rotate()
    versions = ", ".join(f"{j.purpose} v{j.target_version}" for j in jobs)
    messages.success(request, f"Keys rotated ({versions}); re-encrypting in the background.")
    return redirect("keyring:security")


@permission_required(Perm.KEYS_ROTATE)
@require_POST
@step_up_required
def rotate_token_key(request):
    immediately = request.POST.get("immediately") == "1"
    rotation = token_key_rotate(immediately=immediately)
    if immediately:
        done = "the previous key was destroyed: every API token issued before now is refused."
    else:
        done = (
            "tokens signed with the previous key keep working until "
            f"{rotation.previous_valid_until:%Y-%m-%d %H:%M} UTC."
            if rotation.previous_valid_until
            else "there was no previous key."
        )
    messages.success(
        request, f"API token signing key rotated (now {signing.kid_for(rotation.version)}); {done}"
    )
    return redirect("keyring:security")
