"""Tenant-side pages: sign in, home, users, first-password (invite) page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import lockout, mfa, services
from accounts.dashboard import dashboard_for
from accounts.forms import GrantRequestForm, InviteForm, ThrottledAuthenticationForm
from accounts.mfa import ALWAYS_MFA_ROLES
from accounts.models import AccessGrant
from accounts.permissions import permission_required, step_up_required
from accounts.policy import Perm, Role, permissions_of, rank, user_has
from accounts.revocation import SESSION_KEY as SESSION_EPOCH_KEY
from accounts.revocation import bump
from accounts.revocation import current as current_epoch
from accounts.selectors import user_list
from accounts.throttles import LoginRateLimitMixin
from parley.forms import add_validation_error


class LoginView(LoginRateLimitMixin, auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True
    authentication_form = ThrottledAuthenticationForm

    def form_valid(self, form):
        lockout.clear(username=form.get_user().get_username())
        return super().form_valid(form)


class LogoutView(auth_views.LogoutView):
    pass


class ActivateView(auth_views.PasswordResetConfirmView):
    """An invited user sets their first password with the link from the invite."""

    template_name = "accounts/activate.html"
    success_url = reverse_lazy("accounts:activated")
    post_reset_login = False


class ActivatedView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/activated.html"


@login_required
def home(request):
    perms = [Perm(p) for p in permissions_of(request.user.role)]
    due = 0
    if Perm.CONNECTORS_MANAGE in perms:
        from connectors.selectors import credentials_due

        due = credentials_due().count()
    board = dashboard_for(request.user, tenant=request.tenant)
    return render(
        request,
        "accounts/home.html",
        {"permissions": perms, "credentials_due": due, "board": board},
    )


@login_required
@require_POST
def sign_out_everywhere(request):
    """End every session of this user, on every device, this one included."""

    bump(request.user.pk)
    logout(request)
    return redirect("login")


# --- user management -----------------------------------------------------------------------------


def _users_page(request, *, status=200, invite_form=None):

    manage = user_has(request.user, Perm.USERS_MANAGE)
    my_rank = rank(request.user.role)

    rows = list(user_list())
    locked = {u.pk for u in rows if manage and lockout.locked(username=u.get_username(), ip=None)}
    return render(
        request,
        "accounts/users.html",
        {
            "users": rows,
            "locked": locked,
            "manage": manage,
            # Least privileged first: the invitation form starts with the smallest role.
            "grantable_roles": sorted((r for r in Role if rank(r) <= my_rank), key=rank),
            "pending": {u.pk for u in rows if services.invitation_pending(u)},
            "my_rank": my_rank,
            "invite_form": invite_form or InviteForm(),
        },
        status=status,
    )


@permission_required(Perm.USERS_VIEW)
def users(request):
    return _users_page(request)


def _user_or_404(user_id):

    return get_object_or_404(get_user_model(), pk=user_id)


def _service_call(request, fn, success: str):
    """Run a user-management service; its refusals become a message on the page (400)."""

    try:
        fn()
    except ValidationError as exc:
        for msg in exc.messages:
            messages.error(request, msg)
        return _users_page(request, status=400)
    messages.success(request, success)
    return redirect("accounts:users")


@require_POST
@permission_required(Perm.USERS_MANAGE)
@step_up_required
def user_invite(request):

    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            user = services.user_invite(by=request.user, request=request, **form.cleaned_data)
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            messages.success(request, f"Invited {user.email}: the invitation e-mail is on its way.")
            return redirect("accounts:users")
    return _users_page(request, status=400, invite_form=form)


@require_POST
@permission_required(Perm.USERS_MANAGE)
@step_up_required
def user_role(request, user_id: int):

    target = _user_or_404(user_id)
    role = request.POST.get("role", "")
    was = target.get_role_display()
    label = Role(role).label if role in Role.values else role
    return _service_call(
        request,
        lambda: services.user_set_role(by=request.user, user=target, role=role),
        f"{_person(target)} is now {_article(label)} {label} (was {was}).",
    )


def _person(user) -> str:
    name = user.get_full_name()
    return f"{name} ({user.email})" if name else user.email


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


@require_POST
@permission_required(Perm.USERS_MANAGE)
@step_up_required
def user_invite_resend(request, invited_id: int):
    target = _user_or_404(invited_id)
    return _service_call(
        request,
        lambda: services.user_invite_resend(by=request.user, user=target, request=request),
        f"A new invitation is on its way to {target.email}.",
    )


@require_POST
@permission_required(Perm.USERS_MANAGE)
@step_up_required
def user_invite_cancel(request, invited_id: int):
    target = _user_or_404(invited_id)
    return _service_call(
        request,
        lambda: services.user_invite_cancel(by=request.user, user=target, request=request),
        f"The invitation of {target.email} was withdrawn.",
    )


@require_POST
@permission_required(Perm.USERS_MANAGE)
@step_up_required
def user_active(request, user_id: int):

    target = _user_or_404(user_id)
    active = request.POST.get("active") == "1"
    return _service_call(
        request,
        lambda: services.user_set_active(by=request.user, user=target, active=active),
        f"{target.email} was {'reactivated' if active else 'deactivated; their sessions and tokens ended'}.",
    )


@require_POST
@permission_required(Perm.USERS_MANAGE)
@step_up_required
def user_mfa_reset(request, user_id: int):

    target = _user_or_404(user_id)
    return _service_call(
        request,
        lambda: services.user_mfa_reset(by=request.user, user=target, request=request),
        f"{target.email}'s two-factor devices were removed; they set up new ones at their next sign-in.",
    )


@require_POST
@permission_required(Perm.USERS_MANAGE)
def user_unlock(request, user_id: int):

    target = _user_or_404(user_id)
    return _service_call(
        request,
        lambda: services.user_unlock(by=request.user, user=target),
        f"{target.email} can sign in again.",
    )


# --- MFA policy ------------------------------------------------------------------------------------


@permission_required(Perm.SECURITY_POLICY)
@step_up_required
def mfa_policy(request):

    if request.method == "POST":
        chosen = [r for r in request.POST.getlist("mfa_roles") if r in Role.values]
        _, changed = services.security_policy_set(by=request.user, mfa_roles=chosen)
        if changed:
            messages.success(request, "MFA policy saved.")
        else:
            messages.info(request, "No changes: the MFA policy is as it was.")
        return redirect("accounts:mfa_policy")
    required = mfa.policy_roles()
    return render(
        request,
        "accounts/mfa_policy.html",
        {
            "roles": [
                {
                    "value": r.value,
                    "label": r.label,
                    "on": r in required,
                    "fixed": r in ALWAYS_MFA_ROLES,
                }
                for r in Role
            ]
        },
    )


# --- just-in-time access -----------------------------------------------------------------------------


@login_required
def access(request):
    """Ask for time-bounded access; approvers answer the open requests here."""

    inbox_choices = services.grant_inbox_choices(user=request.user)
    form = GrantRequestForm(
        request.POST or None,
        inbox_choices=inbox_choices,
        inbox_note="" if inbox_choices else services.grant_inbox_note(user=request.user),
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.grant_request(by=request.user, **form.service_kwargs())
            except ValidationError as exc:
                add_validation_error(form, exc)
            else:
                messages.success(request, "Request sent: an administrator will answer it.")
                return redirect("accounts:access")
        status = 400
    approver = user_has(request.user, Perm.GRANTS_APPROVE)
    pending = (
        AccessGrant.objects.filter(status=AccessGrant.Status.PENDING)
        .exclude(user=request.user)
        .select_related("user")
        if approver
        else AccessGrant.objects.none()
    )
    mine = list(AccessGrant.objects.filter(user=request.user)[:50])
    pending = list(pending[:100])
    services.grant_inbox_names_attach([*mine, *pending])
    return render(
        request,
        "accounts/access.html",
        {
            "form": form,
            "mine": mine,
            "pending": pending,
            "approver": approver,
            "now": timezone.now(),
        },
        status=status,
    )


@require_POST
@permission_required(Perm.GRANTS_APPROVE)
@step_up_required
def access_decide(request, grant_id: int):

    grant = get_object_or_404(AccessGrant, pk=grant_id)
    approve = request.POST.get("decision") == "approve"
    try:
        services.grant_decide(by=request.user, grant=grant, approve=approve)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Approved." if approve else "Denied.")
    return redirect("accounts:access")


@require_POST
@login_required
def access_revoke(request, grant_id: int):
    """Approvers end anyone's grant; a holder may give their own back (others: 404)."""

    grant = AccessGrant.objects.filter(pk=grant_id).first()
    if grant is None or (
        grant.user_id != request.user.pk and not user_has(request.user, Perm.GRANTS_APPROVE)
    ):
        raise Http404
    was_pending = grant.status == AccessGrant.Status.PENDING
    try:
        grant = services.grant_revoke(by=request.user, grant=grant)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("accounts:access")
    if grant.user_id == request.user.pk:
        # Giving one's own access back moved the revocation epoch (tokens and
        # other sessions re-read what the user may do). This session stays, at
        # the standing role: a new session key, stamped with the new epoch.
        request.session.cycle_key()
        request.session[SESSION_EPOCH_KEY] = current_epoch(request.user.pk)
        if was_pending:
            messages.success(request, "Request withdrawn.")
        else:
            services.grant_inbox_names_attach([grant])
            what = (
                f"the {services.role_label(grant.role)} role"
                if grant.kind == AccessGrant.Kind.ROLE
                else f"inbox {grant.inbox_name}"
            )
            messages.success(
                request,
                f"You gave {what} back; you work as "
                f"{services.role_label(request.user.role)} again.",
            )
    else:
        messages.success(request, "Access ended.")
    return redirect("accounts:access")


# For the role matrix: besides the grant's holder, only approvers reach it.
access_revoke.required_permission = Perm.GRANTS_APPROVE
