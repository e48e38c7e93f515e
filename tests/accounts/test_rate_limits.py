"""Rate limits in Redis: per address on sign-in (pages and token endpoints), per user
and per tenant on the API; 429 with Retry-After."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
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


# --- leases (accounts.throttles.hit_leased): busy limits, one round trip per lease ----------------

WINDOW = 1_000_000 * 60.0  # a window boundary


def _counted(scope: str, ident: str, at: float) -> int:
    """The shared count of the minute window holding ``at``."""
    (raw,) = throttles.get_raw([f"rl:{scope}:{ident}:{int(at // 60)}"])
    return int(raw or 0)


@pytest.fixture
def round_trips(monkeypatch):
    """Calls of the counting script (one Redis round trip each)."""
    calls = []
    count = throttles._count

    def counting(keys, ttls, units=1):
        calls.append(units)
        return count(keys, ttls, units)

    monkeypatch.setattr(throttles, "_count", counting)
    return calls


def test_a_busy_limit_is_counted_a_lease_at_a_time(acme, round_trips):
    ident, rate = uuid.uuid4().hex, "100000/min"  # a lease: min(50, 100000 / 1000)
    with tenant_context(acme):
        assert all(
            throttles.hit_leased(scope="unit", ident=ident, rate=rate, now=WINDOW + 1) is None
            for _ in range(120)
        )
        assert round_trips == [50, 50, 50]
        assert _counted("unit", ident, WINDOW + 1) == 150
        # A new window: the old lease's 30 unused requests stay counted where they
        # were (early refusals, never late ones); a new lease is taken.
        assert throttles.hit_leased(scope="unit", ident=ident, rate=rate, now=WINDOW + 61) is None
        assert round_trips == [50, 50, 50, 50]
        assert _counted("unit", ident, WINDOW + 61) == 50
    connection.set_schema_to_public()


def test_near_its_limit_a_leased_limit_counts_each_request_exactly(acme, round_trips):
    ident, rate = uuid.uuid4().hex, "2000/min"  # a lease of 2
    limit = throttles.Limit("unit", ident, rate)
    with tenant_context(acme):
        assert throttles.hit_many([limit], now=WINDOW + 30, units=1997) is None
        assert throttles.hit_leased(scope="unit", ident=ident, rate=rate, now=WINDOW + 30) is None
        assert _counted("unit", ident, WINDOW + 30) == 1999  # a lease of 2 taken whole
        assert throttles.hit_leased(scope="unit", ident=ident, rate=rate, now=WINDOW + 30) is None
        # No lease left and none fits whole: the request is counted alone, and fits.
        assert throttles.hit_leased(scope="unit", ident=ident, rate=rate, now=WINDOW + 30) is None
        assert _counted("unit", ident, WINDOW + 30) == 2000
        # Full: refused as hit() refuses, with its Retry-After, and not counted.
        wait = throttles.hit_leased(scope="unit", ident=ident, rate=rate, now=WINDOW + 30)
        assert wait == throttles.hit(scope="unit", ident=ident, rate=rate, now=WINDOW + 30) > 0
        assert _counted("unit", ident, WINDOW + 30) == 2000
    connection.set_schema_to_public()


@pytest.mark.parametrize("rate", ["1999/min", "30/min", "1/min"])
def test_a_limit_below_two_leases_per_mille_is_counted_one_request_at_a_time(
    acme, round_trips, rate
):
    ident = uuid.uuid4().hex
    with tenant_context(acme):
        for _ in range(3):
            throttles.hit_leased(scope="unit", ident=ident, rate=rate, now=WINDOW + 1)
        assert round_trips == [1, 1, 1]
        assert _counted("unit", ident, WINDOW + 1) == (3 if rate != "1/min" else 1)
    connection.set_schema_to_public()


def test_a_tenants_lease_serves_that_tenant_alone(acme, globex, round_trips):
    ident, rate = uuid.uuid4().hex, "100000/min"
    with tenant_context(acme):
        assert throttles.hit_leased(scope="unit", ident=ident, rate=rate, now=WINDOW + 1) is None
    with tenant_context(globex):
        assert throttles.hit_leased(scope="unit", ident=ident, rate=rate, now=WINDOW + 1) is None
        assert _counted("unit", ident, WINDOW + 1) == 50
    assert round_trips == [50, 50]
    connection.set_schema_to_public()


def test_threads_sharing_a_lease_let_through_exactly_what_was_counted(acme, round_trips):
    """Eight threads of one process, 25 requests each: every request allowed, and no
    more let through than the leases counted."""
    ident, rate = uuid.uuid4().hex, "100000/min"
    allowed = []

    def worker():
        with tenant_context(acme):
            for _ in range(25):
                if (
                    throttles.hit_leased(scope="unit", ident=ident, rate=rate, now=WINDOW + 1)
                    is None
                ):
                    allowed.append(1)
        connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 200
    with tenant_context(acme):
        assert _counted("unit", ident, WINDOW + 1) == 50 * len(round_trips) >= 200
    assert len(round_trips) <= 4 + 8  # a lease each time one runs out, a few taken at once
    connection.set_schema_to_public()
