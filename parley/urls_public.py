"""URLs served on the bare platform domain: the platform console and /healthz."""

from django.urls import include, path

from connectors.shared_webhook import shared_webhook
from parley.health import healthz
from tenants import console

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # The platform's shared Meta app (signed with the platform's secret, routed by account id).
    path("webhooks/meta/<slug:kind>/", shared_webhook, name="meta-shared-webhook"),
    path("login/", console.ConsoleLoginView.as_view(), name="login"),
    path("logout/", console.ConsoleLogoutView.as_view(), name="logout"),
    path("", include("accounts.mfa_urls")),
    path("", include("audit.urls")),
    path("", include("tenants.urls")),
]

handler403 = "parley.views.permission_denied"
handler404 = "parley.views.not_found"
handler500 = "parley.views.server_error"
