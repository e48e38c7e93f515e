"""The home dashboard: a composition page, above every app (it gathers figures from several).

Lives at the top of the layer order (docs/architecture.md) so that no app has to
import a higher one to show its figure here.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.policy import Perm, permissions_of
from connectors.selectors import credentials_due


@login_required
def home(request):
    perms = [Perm(p) for p in permissions_of(request.user.role)]
    due = credentials_due().count() if Perm.CONNECTORS_MANAGE in perms else 0
    return render(request, "accounts/home.html", {"permissions": perms, "credentials_due": due})
