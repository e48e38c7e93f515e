"""URLs served on a tenant's host (``<tenant>.<domain>``)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts import api as accounts_api
from accounts import api_auth as accounts_api_auth
from accounts import views as accounts_views
from audit import api as audit_api
from bots import api_urls as bots_api_urls
from connectors import api as connectors_api
from connectors import channel_api as connectors_channel_api
from connectors.ai import api as connectors_ai_api
from conversations import api as conversations_api
from parley import dashboard
from parley.views import relaxed_styles

api_v1 = [
    path("auth/token/", accounts_api_auth.TokenObtainView.as_view(), name="token"),
    path("auth/token/refresh/", accounts_api_auth.TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/token/revoke/", accounts_api_auth.TokenRevokeView.as_view(), name="token-revoke"),
    path("me/", accounts_api.MeView.as_view(), name="me"),
    path("users/", accounts_api.UserListView.as_view(), name="users"),
    path("users/<int:user_id>/", accounts_api.UserDetailView.as_view(), name="user"),
    path("audit/events/", audit_api.AuditEventListView.as_view(), name="audit-events"),
    path("audit/exports/", audit_api.AuditExportView.as_view(), name="audit-export"),
    path("inboxes/", conversations_api.InboxListView.as_view(), name="inboxes"),
    path("conversations/", conversations_api.ConversationListView.as_view(), name="conversations"),
    path(
        "conversations/<int:conversation_id>/",
        conversations_api.ConversationDetailView.as_view(),
        name="conversation",
    ),
    path(
        "conversations/<int:conversation_id>/messages/",
        conversations_api.MessageListView.as_view(),
        name="conversation-messages",
    ),
    path(
        "conversations/<int:conversation_id>/assign/",
        conversations_api.AssignView.as_view(),
        name="conversation-assign",
    ),
    path(
        "conversations/<int:conversation_id>/resolve/",
        conversations_api.ResolveView.as_view(),
        name="conversation-resolve",
    ),
    path("contacts/search/", conversations_api.ContactSearchView.as_view(), name="contact-search"),
    path("inboxes/<int:inbox_id>/", conversations_api.InboxDetailView.as_view(), name="inbox"),
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
    path("ai-providers/", connectors_ai_api.AiProviderListView.as_view(), name="ai-providers"),
    path(
        "ai-providers/<int:provider_id>/",
        connectors_ai_api.AiProviderDetailView.as_view(),
        name="ai-provider",
    ),
    path(
        "ai-providers/<int:provider_id>/test/",
        connectors_ai_api.AiProviderTestView.as_view(),
        name="ai-provider-test",
    ),
    path("channels/", connectors_channel_api.ChannelListView.as_view(), name="channels"),
    path(
        "channels/inboxes/",
        connectors_channel_api.ChannelInboxesView.as_view(),
        name="channel-inboxes",
    ),
    path(
        "channels/<int:channel_id>/rotate/",
        connectors_channel_api.ChannelRotateView.as_view(),
        name="channel-rotate",
    ),
    path(
        "channels/<int:channel_id>/origins/",
        connectors_channel_api.ChannelOriginsView.as_view(),
        name="channel-origins",
    ),
    *bots_api_urls.urlpatterns,
]

urlpatterns = [
    # First: the busiest route. Django tries patterns in order and scans each
    # include("") below pattern by pattern: resolving a webhook took 0.07 ms there,
    # 0.014 ms here (docs/scaling.md, "Round four").
    path("webhooks/", include("connectors.webhook_urls")),
    path("", dashboard.home, name="home"),
    path("login/", accounts_views.LoginView.as_view(), name="login"),
    path("logout/", accounts_views.LogoutView.as_view(), name="logout"),
    path("", include("accounts.urls")),
    path("", include("tenants.breakglass.urls")),
    path("", include("accounts.mfa_urls")),
    path("", include("audit.urls")),
    path("", include("connectors.urls")),
    path("", include("conversations.urls")),
    path("", include("bots.urls")),
    path("", include("bots.kb_urls")),
    path("", include("parley.keyring.urls")),
    path("", include("connectors.webchat.urls")),
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
