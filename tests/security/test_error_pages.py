"""Error reports never show a secret, with DEBUG on (the development default) or off:
not the KEK, not a decrypted channel secret in a frame's locals, not a database or
Redis password inside a URL. And a report with text UTF-8 cannot encode renders fast."""

from __future__ import annotations

import sys
import time

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.views.debug import technical_500_response

from tests import support
from tests.connectors.test_api_channel import _channel

pytestmark = pytest.mark.django_db

DB_PASSWORD = "db-marker-password-4411"
REDIS_PASSWORD = "redis-marker-password-9902"
VAULT_TOKEN = "hvs.vault-marker-token-5150"
URLS = {
    "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/1",
    "CELERY_BROKER_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/1",
    "PARLEY_VAULT_TOKEN": VAULT_TOKEN,
}
# What `runserver` puts into request.META: the process environment.
ENVIRON = {
    "DATABASE_URL": f"postgres://parley_app:{DB_PASSWORD}@db.internal:5432/parley",
    "REDIS_URL": URLS["REDIS_URL"],
    "PARLEY_LOCAL_KEK": "",  # filled with the real KEK below
}


def _markers(secret: str) -> dict[str, str]:
    kek = settings.PARLEY_LOCAL_KEK
    assert kek and len(kek) >= 16  # the real key-encryption key of the test run
    return {
        "KEK": kek,
        "channel secret": secret,
        "database password": DB_PASSWORD,
        "Redis password": REDIS_PASSWORD,
        "Vault token": VAULT_TOKEN,
        "SECRET_KEY": settings.SECRET_KEY,
        "password in a dict": "pw-in-a-dict-77",
    }


def _assert_clean(page: str, secret: str) -> None:
    leaked = [name for name, value in _markers(secret).items() if value in page]
    assert not leaked, f"the error page shows: {leaked}"


def _boom(acme, *, debug: bool, accept: str = "text/html"):
    channel, secret = _channel(acme)
    client = Client(HTTP_HOST=support.TENANTS["acme"], raise_request_exception=False)
    environ = {**ENVIRON, "PARLEY_LOCAL_KEK": settings.PARLEY_LOCAL_KEK}
    with override_settings(DEBUG=debug, ROOT_URLCONF="tests.security.error_urls", **URLS):
        response = client.get(f"/boom/{channel.public_id}/", HTTP_ACCEPT=accept, **environ)
    return response, secret


@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
def test_it_shows_no_secret_on_the_debug_page(acme, accept):
    response, secret = _boom(acme, debug=True, accept=accept)
    assert response.status_code == 500
    page = response.content.decode()
    # It is the technical page, with the frames and their (masked) locals.
    assert "MARK-BOOM" in page and "_verify_then_fail" in page
    assert "PARLEY_LOCAL_KEK" in page and "DATABASE_URL" in page
    _assert_clean(page, secret)


def test_it_shows_no_secret_without_debug(acme):
    response, secret = _boom(acme, debug=False)
    assert response.status_code == 500
    page = response.content.decode()
    assert "MARK-BOOM" not in page
    _assert_clean(page, secret)


def test_it_masks_the_report_built_directly(acme):
    """The reporter Django uses for 500 e-mails and the DEBUG page, called directly."""
    channel, secret = _channel(acme)
    request = support.tenant_client("acme").get("/").wsgi_request

    def fail(secret, kek):
        raise RuntimeError("MARK-DIRECT")

    try:
        fail(secret, settings.PARLEY_LOCAL_KEK)
    except RuntimeError:
        with override_settings(DEBUG=True, **URLS):
            response = technical_500_response(request, *sys.exc_info())
    page = response.content.decode()
    assert "MARK-DIRECT" in page
    _assert_clean(page, secret)


def test_it_renders_a_report_with_a_lone_surrogate_fast(acme):
    client = Client(HTTP_HOST=support.TENANTS["acme"], raise_request_exception=False)
    started = time.monotonic()
    with override_settings(DEBUG=True, ROOT_URLCONF="tests.security.error_urls"):
        response = client.get("/boom-surrogate/")
    elapsed = time.monotonic() - started
    assert response.status_code == 500
    assert "cannot store" in response.content.decode()
    assert elapsed < 3, f"{elapsed:.1f}s"
