from django.urls import path

from conversations import inbox_views, views

app_name = "conversations"

urlpatterns = [
    path("inbox/", inbox_views.inbox, name="inbox_app"),
    path("inbox/c/<int:conversation_id>/", inbox_views.thread, name="thread"),
    path("inbox/c/<int:conversation_id>/new/", inbox_views.thread_new, name="thread_new"),
    path("inbox/c/<int:conversation_id>/reply/", inbox_views.reply, name="reply"),
    path("inbox/c/<int:conversation_id>/act/", inbox_views.act, name="act"),
    path("inboxes/", views.inboxes, name="inboxes"),
    path("inboxes/canned/", views.canned_create, name="canned_create"),
    path("inboxes/<int:inbox_id>/", views.inbox, name="inbox"),
    path("inboxes/<int:inbox_id>/members/", views.inbox_members, name="inbox_members"),
    path("inboxes/<int:inbox_id>/settings/", views.inbox_settings, name="inbox_settings"),
]
