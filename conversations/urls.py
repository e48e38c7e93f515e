from django.urls import path

from conversations import views

app_name = "conversations"

urlpatterns = [
    path("inboxes/", views.inboxes, name="inboxes"),
    path("inboxes/<int:inbox_id>/", views.inbox, name="inbox"),
    path("inboxes/<int:inbox_id>/members/", views.inbox_members, name="inbox_members"),
]
