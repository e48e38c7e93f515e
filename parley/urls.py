"""URLs served on a tenant's host (``<tenant>.<domain>``)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import api as accounts_api
from accounts import views as accounts_views
from audit import api as audit_api
from connectors import api as connectors_api
from parley.views import relaxed_styles

api_v1 = [
    path("me/", accounts_api.MeView.as_view(), name="me"),
    path("users/", accounts_api.UserListView.as_view(), name="users"),
    path("audit/events/", audit_api.AuditEventListView.as_view(), name="audit-events"),
    path("audit/exports/", audit_api.AuditExportView.as_view(), name="audit-export"),
    path("credentials/", connectors_api.CredentialListView.as_view(), name="credentials"),
    path(
        "credentials/<int:credential_id>/",
        connectors_api.CredentialDetailView.as_view(),
        name="credential",
    ),
    path(
        "credentials/<int:credential_id>/test/",
        connectors_api.CredentialTestView.as_view(),
        name="credential-test",
    ),
]

urlpatterns = [
    path("", accounts_views.home, name="home"),
    path("login/", accounts_views.LoginView.as_view(), name="login"),
    path("logout/", accounts_views.LogoutView.as_view(), name="logout"),
    path("", include("accounts.urls")),
    path("", include("audit.urls")),
    path("", include("connectors.urls")),
    path("", include("parley.keyring.urls")),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/",
        relaxed_styles(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="api-docs",
    ),
]

handler403 = "parley.views.permission_denied"
handler404 = "parley.views.not_found"
handler500 = "parley.views.server_error"
