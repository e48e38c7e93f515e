"""Web chat on a tenant's host: the frame and the visitor's JSON endpoints, plus the demo page."""

from django.urls import path

from connectors.webchat import views

app_name = "webchat"

urlpatterns = [
    path("webchat/<str:public_id>/", views.frame, name="frame"),
    path("webchat/<str:public_id>/session/", views.session, name="session"),
    path("webchat/<str:public_id>/messages/", views.messages, name="messages"),
    path("webchat/<str:public_id>/read/", views.read, name="read"),
    path("demo/chat/", views.demo, name="demo"),
    path("connectors/channels/webchat/", views.channel_create, name="create"),
    path("connectors/channels/<int:channel_id>/origins/", views.origins_set, name="origins"),
]
