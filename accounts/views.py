"""Tenant-side pages: sign in, home, users, first-password (invite) page."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from accounts import lockout
from accounts.forms import ThrottledAuthenticationForm
from accounts.permissions import permission_required
from accounts.policy import Perm, permissions_of
from accounts.selectors import user_list


class LoginView(auth_views.LoginView):
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
    return render(request, "accounts/home.html", {"permissions": perms, "credentials_due": due})


@login_required
@require_POST
def sign_out_everywhere(request):
    """End every session of this user, on every device, this one included."""
    from django.contrib.auth import logout

    from accounts.revocation import bump

    bump(request.user.pk)
    logout(request)
    return redirect("login")


@permission_required(Perm.USERS_VIEW)
def users(request):
    return render(request, "accounts/users.html", {"users": user_list()})
