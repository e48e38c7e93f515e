"""Webhooks on a tenant's host: authenticated by signature, never by session or token."""

from django.urls import path

from connectors import webhooks

app_name = "webhooks"

urlpatterns = [
    path("api/<str:public_id>/", webhooks.api_channel, name="api_channel"),
]
