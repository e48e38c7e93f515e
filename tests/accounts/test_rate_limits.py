"""Rate limits in Redis: per address on sign-in (pages and token endpoints), per user
and per tenant on the API; 429 with Retry-After."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings
from django_tenants.utils import tenant_context

from accounts import lockout, throttles
from parley import settings as parley_settings
from tests import support

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_counters")]

TOKEN = "/api/v1/auth/token/"


def _throttled(response) -> int:
    assert response.status_code == 429, response.content
    wait = int(response["Retry-After"])
    assert 1 <= wait <= 120
    return wait


def test_it_refuses_the_31st_token_request_a_minute_from_one_address():
    assert settings.PARLEY_RATE_TOKEN_PER_IP == "30/min"  # the default, not a test value
    client = support.tenant_client("acme")
    # Empty bodies: each one counts, none touches a password or the lockout.
    for _ in range(30):
        assert client.post(TOKEN, {}, content_type="application/json").status_code == 400
    refused = client.post(TOKEN, {}, content_type="application/json")
    _throttled(refused)
    assert refused.json()["code"] == "throttled"
    refresh = client.post(TOKEN + "refresh/", {}, content_type="application/json")
    _throttled(refresh)  # one budget for the token endpoints of an address
    # Another address, and the same address at another tenant, are counted apart.
    other = client.post(TOKEN, {}, content_type="application/json", REMOTE_ADDR="10.2.2.2")
    assert other.status_code == 400
    globex = support.tenant_client("globex").post(TOKEN, {}, content_type="application/json")
    assert globex.status_code == 400


@override_settings(PARLEY_RATE_API_PER_USER="3/min")
def test_it_limits_each_user_on_the_api(acme):
    agent = support.signed_in(acme, "agent@acme.test")
    for _ in range(3):
        assert agent.get("/api/v1/me/").status_code == 200
    refused = agent.get("/api/v1/me/")
    _throttled(refused)
    assert refused.json()["code"] == "throttled"
    assert support.signed_in(acme, "analyst@acme.test").get("/api/v1/me/").status_code == 200


@override_settings(PARLEY_RATE_API_PER_TENANT="4/min")
def test_it_limits_the_whole_tenant_on_the_api(acme, globex):
    clients = [support.signed_in(acme, f"{role}@acme.test") for role in ("agent", "analyst")]
    for client in clients:
        for _ in range(2):
            assert client.get("/api/v1/me/").status_code == 200
    _throttled(support.signed_in(acme, "marketer@acme.test").get("/api/v1/me/"))
    assert support.signed_in(globex, "agent@globex.test").get("/api/v1/me/").status_code == 200


@override_settings(PARLEY_RATE_LOGIN_PER_IP="3/min")
def test_it_limits_sign_in_page_posts_per_address(acme):
    client = support.tenant_client("acme")
    for _ in range(3):
        page = client.post("/login/", {"username": "agent@acme.test", "password": "wrong"})
        assert page.status_code == 200
    refused = client.post("/login/", {"username": "agent@acme.test", "password": support.PASSWORD})
    _throttled(refused)
    assert "Too many sign-in attempts" in refused.content.decode()
    assert "_auth_user_id" not in client.session  # the right password was not even checked
    # The console counts its own sign-in page.
    console = support.console_client()
    for _ in range(3):
        console.post("/login/", {"username": "operator", "password": "wrong"})
    _throttled(console.post("/login/", {"username": "operator", "password": "wrong"}))
    connection.set_schema_to_public()


def test_it_does_not_count_a_refused_sign_in_page_post_against_the_lockout(acme):
    with override_settings(PARLEY_RATE_LOGIN_PER_IP="1/min"):
        client = support.tenant_client("acme")
        client.post("/login/", {"username": "agent@acme.test", "password": "wrong"})
        for _ in range(5):
            _throttled(client.post("/login/", {"username": "agent@acme.test", "password": "x"}))
    with tenant_context(acme):
        assert not lockout.locked(username="agent@acme.test", ip="127.0.0.1")
    connection.set_schema_to_public()


# --- the sliding window itself ----------------------------------------------------------------------


def test_it_slides_the_window_and_says_how_long_to_wait(acme):
    ident = uuid.uuid4().hex
    start = 1_000_000 * 60.0  # a window boundary

    def hit(at: float):
        return throttles.hit(scope="unit", ident=ident, rate="10/min", now=start + at)

    with tenant_context(acme):
        assert all(hit(59) is None for _ in range(10))
        # Full window: wait for the next one, then until this window's share has decayed.
        assert hit(59.5) == 7  # 0.5 s to the next window + 60 s × (1 − 9/10)
        # Half into the next window, half of the previous 10 still count: 5 more fit.
        assert all(hit(60 + 30) is None for _ in range(5))
        # The previous window's 10 decay by one every 6 s.
        assert hit(60 + 30) == 6
        # Refused requests were not counted: 6 s later one more fits.
        assert hit(60 + 36.5) is None
    connection.set_schema_to_public()


def test_it_counts_a_request_refused_by_one_limit_against_none(acme):
    ident = uuid.uuid4().hex
    strict, loose = throttles.Limit("a", ident, "1/hour"), throttles.Limit("b", ident, "3/hour")
    with tenant_context(acme):
        assert throttles.hit_many([strict, loose]) is None
        assert throttles.hit_many([strict, loose]) > 0  # the strict one refuses
        # The loose limit saw one request, not two: two more fit, then no more.
        assert throttles.hit(scope="b", ident=ident, rate="3/hour") is None
        assert throttles.hit(scope="b", ident=ident, rate="3/hour") is None
        assert throttles.hit(scope="b", ident=ident, rate="3/hour") is not None
    connection.set_schema_to_public()


def test_it_keeps_each_tenants_counters_apart(acme, globex):
    ident = uuid.uuid4().hex
    with tenant_context(acme):
        assert throttles.hit(scope="unit", ident=ident, rate="1/hour") is None
        assert throttles.hit(scope="unit", ident=ident, rate="1/hour") is not None
    with tenant_context(globex):
        assert throttles.hit(scope="unit", ident=ident, rate="1/hour") is None
    connection.set_schema_to_public()


@pytest.mark.parametrize("rate", ["30", "0/min", "30/fortnight", "x/min"])
def test_it_refuses_a_bad_rate_setting(monkeypatch, rate):
    monkeypatch.setenv("PARLEY_RATE_TEST", rate)
    with pytest.raises(ImproperlyConfigured, match="PARLEY_RATE_TEST"):
        parley_settings._env_rate("PARLEY_RATE_TEST", "30/min")
    with pytest.raises(ValueError):
        throttles.parse_rate(rate)


def test_it_reads_a_good_rate_setting(monkeypatch):
    monkeypatch.setenv("PARLEY_RATE_TEST", "120/hour")
    assert parley_settings._env_rate("PARLEY_RATE_TEST", "30/min") == "120/hour"
    assert throttles.parse_rate("120/hour") == (120, 3600)
