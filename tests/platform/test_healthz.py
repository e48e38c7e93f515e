"""/healthz: database, Redis and a live worker; 200 or 503 with JSON."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from parley.heartbeat import HEARTBEAT_KEY, record_heartbeat
from parley.tasks import heartbeat
from tests import support

pytestmark = pytest.mark.django_db


def _get():
    return support.console_client().get("/healthz")


def _clear():
    redis.Redis.from_url(settings.REDIS_URL).delete(HEARTBEAT_KEY)


def test_it_answers_503_without_a_worker_heartbeat():
    _clear()
    response = _get()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert body["checks"]["worker"] == {"ok": False, "error": "no worker heartbeat yet"}


def test_it_answers_503_when_the_heartbeat_is_stale():
    record_heartbeat()
    with override_settings(PARLEY_HEARTBEAT_MAX_AGE=-1):
        response = _get()
    assert response.status_code == 503
    assert "last heartbeat" in response.json()["checks"]["worker"]["error"]


def test_it_is_only_on_the_platform_domain():
    assert support.tenant_client("acme").get("/healthz").status_code == 404


@pytest.mark.slow
def test_it_answers_200_once_a_real_worker_beats(default_worker):
    _clear()
    assert _get().status_code == 503
    heartbeat.delay()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = _get()
        if response.status_code == 200:
            break
        time.sleep(0.2)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["checks"]["worker"]["ok"]
