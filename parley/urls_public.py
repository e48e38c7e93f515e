"""URLs served on the bare platform domain: the platform console and /healthz."""

from django.urls import include, path

from parley.health import healthz
from tenants import console

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("login/", console.ConsoleLoginView.as_view(), name="login"),
    path("logout/", console.ConsoleLogoutView.as_view(), name="logout"),
    path("", include("accounts.mfa_urls")),
    path("", include("audit.urls")),
    path("", include("tenants.urls")),
]

handler403 = "parley.views.permission_denied"
handler404 = "parley.views.not_found"
handler500 = "parley.views.server_error"
