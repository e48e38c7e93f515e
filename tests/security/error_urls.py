"""A URLconf for tests/security/test_error_pages.py: views that fail on purpose
while secrets sit in their frames, as a real webhook or connector view would."""

from django.urls import path

from connectors import channels, health
from connectors.services import credential_use


def _verify_then_fail(secret: str, key: bytes) -> None:
    raise RuntimeError("forced failure MARK-BOOM")


def secret_in_locals(request, public_id):
    channel = channels.channel_for_webhook(kind="api", public_id=public_id)
    secret = credential_use(
        credential=channel.signing_credential, purpose="test", actor=health.channel_actor(channel)
    )
    settings_like = {"password": secret, "kek": secret, "url": "redis://:pw-in-a-dict-77@h:1/0"}
    _verify_then_fail(secret, secret.encode())
    return settings_like


def surrogate_in_locals(request):
    body = "\ud800 text from a JSON body"
    text = body
    raise ValueError(f"cannot store {text}")


urlpatterns = [
    path("boom/<str:public_id>/", secret_in_locals),
    path("boom-surrogate/", surrogate_in_locals),
]
