"""Gaps the audit trail closes: requests refused for a bad bearer token (aggregated per
address and minute, bounded), and unhandled errors (request id and path, never the body)."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, override_settings
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from tests import support
from tests.audit.failing_urls import MARKER

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"
BAD = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


def _clear_token_counters() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(match="*audit-per-source*"):
        client.delete(key)


@pytest.fixture(autouse=True)
def _fresh_counters():
    _clear_token_counters()
    support.clear_rate_counters()
    yield
    _clear_token_counters()
    support.clear_rate_counters()


@pytest.fixture
def one_minute():
    """Counts are per minute: a test that counts several requests starts well inside
    one (each takes under a second; 10 s to spare) so it never straddles two. Tests
    of a single request need no such wait."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def _events(tenant, action):
    with tenant_context(tenant):
        events = list(AuditEvent.objects.filter(action=action).order_by("id"))
    connection.set_schema_to_public()
    return events


def _refused(ip, *, authorization=BAD, path=ME):
    response = support.tenant_client("acme").get(
        path, HTTP_AUTHORIZATION=authorization, REMOTE_ADDR=ip
    )
    assert response.status_code == 401, response.content
    return response


# --- auth.token.invalid ----------------------------------------------------------------------------


def test_it_records_the_first_bad_token_of_an_address_at_once(acme):
    _refused("10.8.8.1")

    [event] = _events(acme, "auth.token.invalid")
    assert event.outcome == "denied" and event.actor_kind == "anonymous"
    assert event.ip == "10.8.8.1" and len(event.request_id) >= 8
    assert event.details["count"] == 1 and event.details["code"] == "token_invalid"
    assert event.details["path"] == ME and event.details["method"] == "GET"
    assert "eyJ" not in str(event.details)  # never the token


def test_it_aggregates_a_flood_per_address_and_minute(acme, one_minute):
    for _ in range(25):
        _refused("10.8.8.2")
    _refused("10.8.8.3", authorization="Bearer not-a-jwt")
    _refused("10.8.8.3", authorization="Bearer")  # malformed header: refused and counted

    events = _events(acme, "auth.token.invalid")
    by_ip = {}
    for event in events:
        by_ip.setdefault(event.ip, []).append(event.details["count"])
    # 25 refusals from one address: the 1st and the 10th are recorded, with the running count.
    assert by_ip == {"10.8.8.2": [1, 10], "10.8.8.3": [1]}
    assert {e.details["minute"] for e in events} and len({e.details["minute"] for e in events}) == 1


@override_settings(PARLEY_AUDIT_PER_SOURCE_MAX_PER_MINUTE=3)
def test_it_caps_the_events_a_minute_from_many_addresses(acme, one_minute):
    for n in range(6):
        _refused(f"10.8.9.{n}")
    assert len(_events(acme, "auth.token.invalid")) == 3


def test_it_records_a_bad_token_in_the_tenant_it_was_sent_to_only(acme, globex):
    _refused("10.8.8.4")
    assert len(_events(acme, "auth.token.invalid")) == 1
    assert _events(globex, "auth.token.invalid") == []


def test_it_does_not_record_requests_without_a_token(acme):
    response = support.tenant_client("acme").get(ME, REMOTE_ADDR="10.8.8.5")
    assert response.status_code == 401
    assert _events(acme, "auth.token.invalid") == []


# --- error.unhandled -------------------------------------------------------------------------------


@override_settings(ROOT_URLCONF="tests.audit.failing_urls")
@pytest.mark.parametrize("path", ["/fail/", "/api/v1/fail/"])
def test_it_records_an_unhandled_error_without_the_body(acme, path):
    client = Client(HTTP_HOST=support.TENANTS["acme"], raise_request_exception=False)
    response = client.post(
        f"{path}?q={MARKER}",
        {"message": MARKER},
        content_type="application/json",
        HTTP_X_REQUEST_ID="req-unhandled-0001",
        HTTP_ACCEPT="application/json",
        REMOTE_ADDR="10.8.7.1",
    )
    assert response.status_code == 500

    [event] = _events(acme, "error.unhandled")
    assert event.outcome == "failed" and event.request_id == "req-unhandled-0001"
    assert event.ip == "10.8.7.1" and event.target_id == path
    assert event.details["error"] == "RuntimeError" and event.details["count"] == 1
    assert event.details["method"] == "POST" and event.details["path"] == path
    assert MARKER not in str(event.details) + event.target_id + event.user_agent
    with tenant_context(acme):
        # The request's own change rolled back; its event did not.
        assert not get_user_model().objects.filter(first_name=MARKER).exists()


@override_settings(ROOT_URLCONF="tests.audit.failing_urls")
def test_it_bounds_the_events_of_a_failure_repeated_at_will(acme, one_minute):
    client = Client(HTTP_HOST=support.TENANTS["acme"], raise_request_exception=False)
    for _ in range(12):
        assert client.get("/fail/", REMOTE_ADDR="10.8.7.2").status_code == 500
    assert [e.details["count"] for e in _events(acme, "error.unhandled")] == [1, 10]
