from django.urls import path

from parley.keyring import views

app_name = "keyring"

urlpatterns = [
    path("settings/security/", views.security, name="security"),
    path("settings/security/rotate/", views.rotate, name="rotate"),
    path("settings/security/rotate-token-key/", views.rotate_token_key, name="rotate_token_key"),
]
