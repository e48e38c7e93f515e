"""MFA pages, the same on tenant hosts and the platform console.

* ``/mfa/enrol/``: a TOTP secret as a QR code (segno, inline SVG) and as text;
  the first correct code confirms the device, and the backup codes are shown once.
* ``/mfa/verify/``: the second step of every sign-in once enrolled (TOTP or a
  backup code). Wrong codes count towards the account's sign-in lock.
* ``/mfa/step-up/``: a fresh code for a sensitive action.
* ``/mfa/``: the user's own devices; new backup codes and a reset (both need
  step-up; a reset ends the user's other sessions).
"""

from __future__ import annotations

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_otp import login as otp_login

from accounts import lockout, mfa
from accounts.models import BackupCodeDevice, TOTPDevice
from accounts.permissions import step_up_pending_pop, step_up_required
from audit.context import client_ip
from audit.models import Outcome
from audit.services import record

BACKUP_CODES_SESSION = "parley_backup_codes"


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=16,
        strip=True,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


def _next(request, default: str = "/") -> str:
    nxt = request.POST.get("next") or request.GET.get("next") or default
    if not url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}):
        return default
    if nxt.startswith("/mfa/enrol/") or nxt.startswith("/mfa/verify/"):
        return default
    return nxt


def _locked_out(request, user) -> bool:
    return lockout.locked(username=user.get_username(), ip=client_ip(request))


def _refuse(request, user, action_target: str):
    """A wrong code: audit, count towards the lock, and end the attempt when locked."""
    lockout.register_failure(username=user.get_username(), ip=client_ip(request))
    record(
        "auth.mfa.failed",
        outcome=Outcome.DENIED,
        target_type="user",
        target_id=user.pk,
        details={"step": action_target},
        request=request,
    )


def _end_locked(request):
    minutes = max(1, settings.PARLEY_LOGIN_LOCK_SECONDS // 60)
    logout(request)
    messages.error(
        request,
        f"Too many wrong codes for this account or network. Try again in {minutes} minutes, "
        "or ask an administrator to lift the lock.",
    )
    return redirect("login")


@login_required
def enrol(request):
    user = request.user
    if not user.is_verified() and mfa.has_device(user):
        # Enrolled already (an app or backup codes): prove it first.
        return redirect(f"/mfa/verify/?next={_next(request)}")
    if mfa.totp_device(user) is not None and not request.session.get(BACKUP_CODES_SESSION):
        return redirect(_next(request))
    if request.session.get(BACKUP_CODES_SESSION):
        # Just enrolled: show the backup codes once, then go on.
        if request.method == "POST":
            request.session.pop(BACKUP_CODES_SESSION, None)
            return redirect(_next(request))
        return render(
            request,
            "mfa/backup_codes.html",
            {"codes": request.session[BACKUP_CODES_SESSION], "next": _next(request)},
        )
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _locked_out(request, user):
            return _end_locked(request)
        with transaction.atomic():
            device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
            ok = device.verify_token(form.cleaned_data["code"])
            if ok:
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                TOTPDevice.objects.filter(user=user, confirmed=False).delete()
                codes = mfa.backup_codes_create(user)
                record("auth.mfa.enrolled", target_type="user", target_id=user.pk, request=request)
        if ok:
            otp_login(request, device)
            mfa.note_verified(request)  # and a new session key
            lockout.clear(username=user.get_username())
            request.session[BACKUP_CODES_SESSION] = codes
            return redirect(f"/mfa/enrol/?next={_next(request)}")
        _refuse(request, user, "enrol")
        if _locked_out(request, user):
            return _end_locked(request)
        form.add_error(
            "code", "That code is not right. Check the time on your phone and try again."
        )
    qr = segno.make(device.config_url, error="m")
    secret = _base32(device.bin_key)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "mfa/enrol.html",
        {
            "form": form,
            "qr_svg": qr.svg_inline(scale=4, dark="#111827"),
            "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            "next": _next(request),
        },
        status=status,
    )


def _base32(key: bytes) -> str:
    from base64 import b32encode

    return b32encode(key).decode().rstrip("=")


def _code_page(request, *, step_up: bool, on_success):
    """Verification and step-up: one code form, the same lock and audit on failure."""
    user = request.user
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _locked_out(request, user):
            return _end_locked(request)
        device = mfa.verify(user, form.cleaned_data["code"])
        if device is not None:
            mfa.note_verified(request)  # and a new session key
            response = on_success(device)
            return response if isinstance(response, HttpResponse) else redirect(_next(request))
        _refuse(request, user, "step-up" if step_up else "sign-in")
        if _locked_out(request, user):
            return _end_locked(request)
        form.add_error("code", _wrong_code_message(user))
    return render(
        request,
        "mfa/verify.html",
        {"form": form, "next": _next(request), "step_up": step_up},
        status=400 if request.method == "POST" else 200,
    )


@login_required
def verify(request):
    user = request.user
    if user.is_verified():
        return redirect(_next(request))
    if not mfa.has_device(user):
        return redirect(f"/mfa/enrol/?next={_next(request)}")

    def signed_in(device):
        otp_login(request, device)
        lockout.clear(username=user.get_username())
        record(
            "auth.mfa.verified",
            target_type="user",
            target_id=user.pk,
            details={"device": "backup code" if isinstance(device, BackupCodeDevice) else "totp"},
            request=request,
        )

    return _code_page(request, step_up=False, on_success=signed_in)


def _wrong_code_message(user) -> str:
    if mfa.verify_is_throttled(user):
        return (
            "That code is not right, or was already used. Wait a few seconds before the next try."
        )
    return "That code is not right, or was already used. Enter the current code from your app, or a backup code."


@login_required
def step_up(request):
    user = request.user
    if not mfa.has_device(user):
        messages.info(request, "Set up two-factor authentication first: this action needs it.")
        return redirect(f"/mfa/enrol/?next={_next(request)}")

    def stepped_up(device):
        record("auth.mfa.step_up", target_type="user", target_id=user.pk, request=request)
        return _resume(request)

    return _code_page(request, step_up=True, on_success=stepped_up)


# What the "finish" button says, per view that asks for step-up.
_RESUME_LABELS = {
    "accounts:user_invite": "Send the invitation",
    "accounts:user_role": "Save the new role",
    "accounts:user_active": "Change the user's status",
    "accounts:user_mfa_reset": "Reset the user's two-factor devices",
    "accounts:mfa_policy": "Save the MFA policy",
    "accounts:access_decide": "Send your answer",
    "audit:export": "Export the audit trail",
    "connectors:channels": "Create the channel",
    "connectors:channel_rotate": "Rotate the signing secret",
    "connectors:channel_enabled": "Pause or resume the channel",
    "connectors:credential_test": "Test the credential",
    "connectors:credential_delete": "Delete the credential",
    "keyring:rotate": "Rotate the encryption keys",
    "break_glass:approve": "Approve the break-glass request",
    "break_glass:deny": "Deny the break-glass request",
    "console:tenant_suspend": "Suspend the tenant",
    "console:tenant_offboard": "Offboard the tenant",
    "mfa:backup_codes": "Make new backup codes",
    "mfa:reset": "Remove your two-factor devices",
}


def _resume(request):
    """After a step-up code: the form that asked for it, filled, one click from done.

    Nothing secret was kept (see ``accounts.permissions._stash``): a form that
    carried one comes back to its page, to be typed again.
    """
    pending = step_up_pending_pop(
        request, request.GET.get("resume", ""), max_age=settings.PARLEY_STEP_UP_SECONDS
    )
    if pending is None:
        return None
    if pending["dropped"]:
        messages.info(
            request,
            "Code confirmed. The secret you typed was not kept: enter it again to finish.",
        )
        return None
    return render(
        request,
        "mfa/step_up_resume.html",
        {
            "pending": pending,
            "label": _RESUME_LABELS.get(pending["view"], "Finish what you started"),
            "next": _next(request),
        },
    )


@login_required
def manage(request):
    user = request.user
    return render(
        request,
        "mfa/manage.html",
        {
            "totp": mfa.totp_device(user),
            "backup_left": mfa.backup_codes_left(user),
            "required": mfa.mfa_required(user),
            "codes": request.session.pop(BACKUP_CODES_SESSION + "_new", None),
        },
    )


@login_required
@require_POST
@step_up_required
def backup_codes_renew(request):
    request.session[BACKUP_CODES_SESSION + "_new"] = mfa.backup_codes_create(request.user)
    record(
        "auth.mfa.backup_codes_renewed",
        target_type="user",
        target_id=request.user.pk,
        request=request,
    )
    return redirect("mfa:manage")


@login_required
@require_POST
@step_up_required
def reset(request):
    """Remove this user's devices: other sessions end; this one goes to enrolment."""
    from accounts import revocation

    user = request.user
    mfa.devices_reset(user, by=user, request=request)
    revocation.remember(request, user)  # the epoch moved: keep only this session
    request.session.pop("otp_device_id", None)
    request.session.pop(mfa.SESSION_OTP_AT, None)
    messages.success(request, "Your authenticator was removed. Set up a new one now.")
    return redirect("/mfa/enrol/")
