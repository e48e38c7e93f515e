from django.urls import path

from connectors import channel_views, template_views, views
from connectors.ai import views as ai_views

app_name = "connectors"

urlpatterns = [
    path("connectors/credentials/", views.credential_list, name="credentials"),
    path(
        "connectors/credentials/<int:credential_id>/replace/",
        views.credential_replace,
        name="credential_replace",
    ),
    path(
        "connectors/credentials/<int:credential_id>/test/",
        views.credential_test,
        name="credential_test",
    ),
    path(
        "connectors/credentials/<int:credential_id>/delete/",
        views.credential_delete,
        name="credential_delete",
    ),
    path("connectors/ai/", ai_views.provider_list, name="ai_providers"),
    path("connectors/ai/<int:provider_id>/", ai_views.provider_edit, name="ai_provider_edit"),
    path("connectors/ai/<int:provider_id>/test/", ai_views.provider_test, name="ai_provider_test"),
    path(
        "connectors/ai/<int:provider_id>/delete/",
        ai_views.provider_delete,
        name="ai_provider_delete",
    ),
    path("connectors/channels/", channel_views.channel_list, name="channels"),
    path(
        "connectors/channels/meta/", channel_views.meta_channel_create, name="meta_channel_create"
    ),
    path(
        "connectors/channels/<int:channel_id>/rotate/",
        channel_views.channel_rotate,
        name="channel_rotate",
    ),
    path(
        "connectors/channels/<int:channel_id>/test/",
        channel_views.channel_test,
        name="channel_test",
    ),
    path(
        "connectors/channels/<int:channel_id>/enabled/",
        channel_views.channel_enabled,
        name="channel_enabled",
    ),
    path(
        "connectors/messages/<int:message_id>/template/",
        template_views.message_template_send,
        name="message_template",
    ),
]
