"""Webhooks on a tenant's host: authenticated by signature, never by session or token.

One URL shape for every channel kind; the kind picks the adapter (registry).
"""

from django.urls import path

from connectors import webhooks

app_name = "webhooks"

urlpatterns = [
    path("<slug:kind>/<str:public_id>/", webhooks.channel_webhook, name="channel"),
]
