"""PostgreSQL or Redis down: pages, API and webhooks answer 503 with Retry-After, never 500,
and answer normally again once the service is back.

The outages are real: the database alias or the cache points at a local port
where nothing listens (connection refused), exactly what a restarting server
gives. The slow test with real restarts is ``tests/platform/test_resilience.py``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import signal
import socket
import sys
import time
import uuid
from datetime import timedelta

import kombu.exceptions
import psycopg
import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, connections
from django.test import Client, override_settings
from django_tenants.utils import tenant_context

from connectors import channels
from connectors.models import InboundEvent
from conversations.models import Message
from parley import faults
from parley.beat import ParleyBeatScheduler
from parley.celery import app
from parley.dbroles import dsn_from_url
from parley.faults import OutageTracebackFilter
from tests import support

RETRY_AFTER = str(settings.PARLEY_RETRY_AFTER_SECONDS)


def _client(host: str) -> Client:
    # The test client re-raises a view's exception by default; we want the
    # response the server would send.
    return Client(HTTP_HOST=host, raise_request_exception=False)


def _assert_json_503(response) -> None:
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == RETRY_AFTER
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert body["retry_after"] == settings.PARLEY_RETRY_AFTER_SECONDS


def _assert_page_503(response) -> None:
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == RETRY_AFTER
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Parley is briefly unavailable" in page
    assert "/static/css/parley.css" in page  # the styled page, not a bare 500 text
    assert "Traceback" not in page


@contextlib.contextmanager
def database_down():
    """The default alias points at a port nobody listens on until the block ends."""
    conn = connections["default"]
    saved = {k: conn.settings_dict.get(k) for k in ("HOST", "PORT")}
    conn.close()
    conn.settings_dict.update(HOST="127.0.0.1", PORT=str(support.free_port()))
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict.update(saved)


@pytest.fixture
def unblocked_db(django_db_setup, django_db_blocker):
    """Database access without a test transaction (the outage closes the connection)."""
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


@contextlib.contextmanager
def redis_down():
    """Cache, rate limits, revocation epochs and /healthz all point at a dead Redis."""
    dead = f"redis://127.0.0.1:{support.free_port()}/1"
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = dead
    with override_settings(CACHES=caches, REDIS_URL=dead):
        yield


# --- PostgreSQL down ---------------------------------------------------------------------


@pytest.mark.usefixtures("unblocked_db")
def test_it_answers_503_json_on_webhooks_and_api_while_the_database_is_down():
    with database_down():
        _assert_json_503(
            _client("acme.localhost").post(
                f"/webhooks/api/{uuid.uuid4().hex}/", data=b"{}", content_type="application/json"
            )
        )
        _assert_json_503(_client("acme.localhost").get("/api/v1/me/"))
        _assert_json_503(
            _client("acme.localhost").post(
                "/api/v1/auth/token/",
                data={"username": "x", "password": "y"},
                content_type="application/json",
            )
        )


@pytest.mark.usefixtures("unblocked_db")
def test_it_answers_a_styled_503_page_while_the_database_is_down_and_recovers():
    with database_down():
        response = _client("acme.localhost").get("/login/")
        _assert_page_503(response)
        # The security headers still apply to the 503 page.
        assert response["Content-Security-Policy"] == settings.PARLEY_CSP
        assert response["X-Request-ID"]
        _assert_page_503(_client(settings.PARLEY_BASE_DOMAIN).get("/login/"))
    # Back: the next request reconnects by itself.
    assert _client("acme.localhost").get("/login/").status_code == 200
    assert _client("globex.localhost").get("/api/v1/me/").status_code == 401


@pytest.mark.usefixtures("unblocked_db")
def test_it_answers_503_in_debug_mode_too():
    with database_down(), override_settings(DEBUG=True):
        _assert_page_503(_client("acme.localhost").get("/login/"))
        _assert_json_503(_client("acme.localhost").get("/api/v1/me/"))


@pytest.mark.usefixtures("unblocked_db")
def test_healthz_says_the_database_is_down():
    with database_down():
        response = _client(settings.PARLEY_BASE_DOMAIN).get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is False
    assert checks["database"]["error"] in ("OperationalError", "InterfaceError")
    assert checks["redis"]["ok"] is True


@pytest.mark.usefixtures("unblocked_db")
def test_it_drops_a_connection_the_server_killed_and_reconnects():
    """A restart kills the connections web holds: the request that meets a dead one
    answers 503 and the next request works on a new connection."""
    client = _client("acme.localhost")
    assert client.get("/login/").status_code == 200
    dead_pid = connection.cursor().connection.info.backend_pid
    superuser = support._env("DATABASE_SUPERUSER_URL")
    with psycopg.connect(
        psycopg.conninfo.make_conninfo(
            dsn_from_url(superuser), dbname=settings.DATABASES["default"]["NAME"]
        ),
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [dead_pid])
    _assert_page_503(client.get("/login/"))
    assert client.get("/login/").status_code == 200
    assert connection.cursor().connection.info.backend_pid != dead_pid


@pytest.mark.usefixtures("unblocked_db")
def test_an_outage_is_logged_once_as_a_warning_without_a_traceback(caplog):
    caplog.set_level(logging.INFO)
    with database_down():
        _client("acme.localhost").get("/login/")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    warnings = [r for r in caplog.records if r.name == "parley.outage"]
    assert [w.getMessage() for w in warnings] == ["database unavailable: GET /login/ answered 503"]
    assert warnings[0].exc_info is None


# --- Redis down ----------------------------------------------------------------------------


def _signed_channel(tenant):
    with tenant_context(tenant):
        admin = get_user_model().objects.get(email=f"admin@{tenant.slug}.test")
        channel, secret = channels.channel_create(
            by=admin,
            name=f"Outage {uuid.uuid4().hex[:6]}",
            outbound_url="https://integration.example/replies",
        )
    connection.set_schema_to_public()
    return channel, secret


@pytest.mark.django_db
def test_it_keeps_a_signed_webhook_while_redis_is_down(acme):
    """The event store is in the database: nothing on the webhook path needs Redis
    before the event is kept (the rate limit fails open), so the sender gets 200."""
    channel, secret = _signed_channel(acme)
    raw = json.dumps(
        {"type": "message", "id": "ext-outage-1", "contact": {"id": "c-1"}, "body": "hello"}
    ).encode()
    with tenant_context(acme):
        before = Message.objects.count()
    with redis_down():
        response = _client("acme.localhost").post(
            f"/webhooks/api/{channel.public_id}/",
            data=raw,
            content_type="application/json",
            HTTP_X_PARLEY_SIGNATURE=channels.signature_header(secret=secret, body=raw),
        )
    assert response.status_code == 200, response.content
    assert response.json()["duplicate"] is False
    with tenant_context(acme):
        assert Message.objects.count() == before + 1
        assert InboundEvent.objects.filter(channel_id=channel.pk).count() == 1
    connection.set_schema_to_public()
    # The sender's retry once Redis is back is the same event.
    response = _client("acme.localhost").post(
        f"/webhooks/api/{channel.public_id}/",
        data=raw,
        content_type="application/json",
        HTTP_X_PARLEY_SIGNATURE=channels.signature_header(secret=secret, body=raw),
    )
    assert response.status_code == 200, response.content
    assert response.json()["duplicate"] is True
    with tenant_context(acme):
        assert Message.objects.count() == before + 1


@pytest.mark.django_db
def test_it_answers_503_on_the_api_while_redis_is_down(acme):
    with redis_down():
        # Per-IP rate limit on the token endpoint lives in Redis.
        _assert_json_503(
            _client("acme.localhost").post(
                "/api/v1/auth/token/",
                data={"username": "owner@acme.test", "password": "x"},
                content_type="application/json",
            )
        )


@pytest.mark.django_db
def test_it_answers_a_503_page_to_a_signed_in_user_while_redis_is_down(acme):
    client = support.signed_in(acme, "agent@acme.test")
    client.raise_request_exception = False
    assert client.get("/").status_code == 200
    with redis_down():
        # The session's revocation epoch is checked in Redis on every request.
        _assert_page_503(client.get("/"))
    assert client.get("/").status_code == 200


@contextlib.contextmanager
def redis_stuck(timeout: float = 0.3):
    """A Redis that accepts connections and never answers (a stuck server, a dropped
    network path): the kernel completes the handshake, nobody ever replies."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        url = f"redis://127.0.0.1:{server.getsockname()[1]}/1"
        caches = copy.deepcopy(settings.CACHES)
        caches["default"]["LOCATION"] = url
        caches["default"]["OPTIONS"] = {
            "socket_connect_timeout": timeout,
            "socket_timeout": timeout,
        }
        with override_settings(CACHES=caches, REDIS_URL=url):
            yield


class _Hung(Exception):
    pass


def _raise_hung(*_):
    raise _Hung


@pytest.mark.django_db
def test_a_stuck_redis_fails_the_request_within_the_cache_timeouts(acme):
    """Rate limits use their own Redis client: it must take the cache's timeouts
    (here 0.3 s), not redis-py's 5 s per attempt."""
    channel, secret = _signed_channel(acme)
    raw = b'{"type": "message", "id": "ext-stuck", "contact": {"id": "c"}, "body": "x"}'
    previous = signal.signal(signal.SIGALRM, _raise_hung)
    signal.alarm(20)  # a hang fails the test instead of the suite
    try:
        with redis_stuck():
            started = time.monotonic()
            webhook = _client("acme.localhost").post(
                f"/webhooks/api/{channel.public_id}/",
                data=raw,
                content_type="application/json",
                HTTP_X_PARLEY_SIGNATURE=channels.signature_header(secret=secret, body=raw),
            )
            # The per-address rate limit here is the first thing to ask Redis.
            token = _client("acme.localhost").post(
                "/api/v1/auth/token/",
                data={"username": "owner@acme.test", "password": "x"},
                content_type="application/json",
            )
            elapsed = time.monotonic() - started
    except _Hung:
        pytest.fail("the requests hung on a Redis that never answers")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    # The webhook keeps its event without Redis (rate limit fails open); the token
    # endpoint's per-address limit has no such fallback.
    assert webhook.status_code == 200, webhook.content
    _assert_json_503(token)
    assert elapsed < 5


@pytest.mark.django_db
def test_healthz_says_redis_is_down():
    with redis_down():
        response = _client(settings.PARLEY_BASE_DOMAIN).get("/healthz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["redis"] == {"ok": False, "error": "ConnectionError"}


# --- what counts as an outage ----------------------------------------------------------------


def test_it_tells_outages_from_bugs():
    assert faults.unavailable_service(OperationalError("the connection is lost")) == "database"
    assert faults.unavailable_service(redis.exceptions.ConnectionError()) == "redis"
    assert faults.unavailable_service(redis.exceptions.BusyLoadingError()) == "redis"
    assert faults.unavailable_service(ValueError("a bug")) is None
    assert faults.unavailable_service(None) is None
    # Raised from an outage (e.g. a service wrapping it in its own error).
    try:
        try:
            raise redis.exceptions.TimeoutError()
        except redis.exceptions.TimeoutError as exc:
            raise RuntimeError("lookup failed") from exc
    except RuntimeError as wrapped:
        assert faults.unavailable_service(wrapped) == "redis"


# --- beat --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("unblocked_db")
def test_beat_skips_a_due_entry_while_the_database_is_down_and_sends_it_once_back(tmp_path, caplog):
    scheduler = ParleyBeatScheduler(
        app=app, schedule_filename=str(tmp_path / "beat-schedule"), lazy=True
    )
    entry = scheduler.Entry(
        name="probe@public",
        task="parley.tasks.heartbeat",
        schedule=timedelta(seconds=1),
        options={"headers": {"_schema_name": "public"}},
        app=app,
    )
    caplog.set_level("INFO")
    with database_down():
        scheduler.apply_entry(entry)  # the stock scheduler raises here and beat exits
    assert "database unavailable (OperationalError); probe@public skipped" in caplog.text
    assert "Sending due task probe@public" not in caplog.text
    caplog.clear()
    scheduler.apply_entry(entry)
    assert "Sending due task probe@public (parley.tasks.heartbeat) to 1 tenants" in caplog.text


def test_beat_logs_a_broker_outage_as_one_line():
    try:
        try:
            raise kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379.")
        except kombu.exceptions.OperationalError as exc:
            raise RuntimeError("Couldn't apply scheduled task heartbeat@public") from exc
    except RuntimeError as exc:
        record = logging.LogRecord(
            "tenant_schemas_celery.scheduler", logging.ERROR, __file__, 1, exc, (), sys.exc_info()
        )
    assert OutageTracebackFilter().filter(record) is True
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == (
        "broker unavailable: Couldn't apply scheduled task heartbeat@public"
    )
    # Anything else keeps its level and traceback.
    try:
        raise ValueError("a bug")
    except ValueError as exc:
        other = logging.LogRecord("x", logging.ERROR, __file__, 1, exc, (), sys.exc_info())
    assert OutageTracebackFilter().filter(other) and other.levelno == logging.ERROR
    assert other.exc_info is not None
