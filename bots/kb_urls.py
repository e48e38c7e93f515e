"""Knowledge-base pages and the bot HTTP allow-list (namespace ``kb``)."""

from django.urls import path

from bots import kb_views

app_name = "kb"

urlpatterns = [
    path("knowledge/", kb_views.article_list, name="articles"),
    path("knowledge/new/", kb_views.article_new, name="article_new"),
    path("knowledge/<int:article_id>/", kb_views.article_edit, name="article_edit"),
    path("knowledge/<int:article_id>/delete/", kb_views.article_delete, name="article_delete"),
    path("bots/hosts/", kb_views.allowed_hosts, name="hosts"),
    path("bots/hosts/<int:host_id>/remove/", kb_views.allowed_host_remove, name="host_remove"),
]
