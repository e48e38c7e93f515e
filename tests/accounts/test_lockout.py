"""Repeated sign-in failures lock the account (and the address); the lock ends by time or by an admin."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from tests import support

pytestmark = pytest.mark.django_db


def _clear_counters() -> None:
    # Only the lockout counters: the same Redis database holds Celery's queues.
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(match="*login-fail*"):
        client.delete(key)


@pytest.fixture(autouse=True)
def _fresh_counters():
    _clear_counters()
    yield
    _clear_counters()


def _attempt(client, username, password, ip="10.1.1.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


@override_settings(PARLEY_LOGIN_MAX_FAILURES=3)
def test_it_locks_an_account_after_repeated_failures(acme):
    client = support.tenant_client("acme")
    for _ in range(3):
        assert _attempt(client, "agent@acme.test", "wrong").status_code == 200
    refused = _attempt(
        client, "agent@acme.test", support.PASSWORD, ip="10.9.9.9"
    )  # right password, other address
    assert refused.status_code == 200 and "Too many failed sign-ins" in refused.content.decode()
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="auth.login.locked").exists()
    # Another account is not locked; another tenant's same username neither.
    assert _attempt(client, "admin@acme.test", support.PASSWORD).status_code == 302
    assert (
        _attempt(support.tenant_client("globex"), "agent@globex.test", support.PASSWORD).status_code
        == 302
    )

    call_command("accounts_unlock", "--tenant", "acme", "--username", "agent@acme.test")
    assert (
        _attempt(support.tenant_client("acme"), "agent@acme.test", support.PASSWORD).status_code
        == 302
    )


@override_settings(PARLEY_LOGIN_MAX_FAILURES=100, PARLEY_LOGIN_MAX_FAILURES_PER_IP=4)
def test_it_locks_an_address_spraying_many_accounts(acme):
    client = support.tenant_client("acme")
    for role in ("owner", "admin", "agent", "marketer"):
        _attempt(client, f"{role}@acme.test", "wrong", ip="10.6.6.6")
    assert (
        "Too many failed sign-ins"
        in _attempt(client, "analyst@acme.test", support.PASSWORD, ip="10.6.6.6").content.decode()
    )
    assert _attempt(client, "analyst@acme.test", support.PASSWORD, ip="10.7.7.7").status_code == 302


@override_settings(PARLEY_LOGIN_MAX_FAILURES=2, PARLEY_LOGIN_LOCK_SECONDS=1)
def test_it_lifts_the_lock_by_itself(acme):
    client = support.tenant_client("acme")
    for _ in range(2):
        _attempt(client, "marketer@acme.test", "wrong")
    assert (
        "Too many failed"
        in _attempt(client, "marketer@acme.test", support.PASSWORD).content.decode()
    )
    time.sleep(1.2)
    assert _attempt(client, "marketer@acme.test", support.PASSWORD).status_code == 302


def test_it_protects_the_console_too():
    client = support.console_client()
    with override_settings(PARLEY_LOGIN_MAX_FAILURES=2):
        for _ in range(2):
            _attempt(client, "operator", "wrong")
        assert "Too many failed" in _attempt(client, "operator", support.PASSWORD).content.decode()


@override_settings(PARLEY_LOGIN_MAX_FAILURES=100, PARLEY_LOGIN_MAX_FAILURES_PER_IP=2)
def test_it_records_a_lock_lifted_from_the_command_line(acme):
    client = support.tenant_client("acme")
    for _ in range(2):
        _attempt(client, "agent@acme.test", "wrong", ip="10.4.4.4")
    assert (
        "Too many failed"
        in _attempt(client, "agent@acme.test", "x", ip="10.4.4.4").content.decode()
    )

    call_command(
        "accounts_unlock", "--tenant", "acme", "--username", "agent@acme.test", "--ip", "10.4.4.4"
    )

    assert _attempt(client, "agent@acme.test", support.PASSWORD, ip="10.4.4.4").status_code == 302
    with tenant_context(acme):
        event = AuditEvent.objects.filter(action="auth.lock_lifted").latest("id")
    assert event.actor_name.startswith("cli:") and event.actor_kind == "system"
    assert event.target_type == "user" and event.target_id == "agent@acme.test"
    assert event.details == {"user": "agent@acme.test", "ip": "10.4.4.4", "via": "cli"}


def test_it_records_a_console_lock_lifted_from_the_command_line():
    call_command("accounts_unlock", "--platform", "--ip", "10.5.5.5")
    event = AuditEvent.objects.filter(action="auth.lock_lifted").latest("id")
    assert event.target_type == "ip" and event.target_id == "10.5.5.5"
    assert event.details["via"] == "cli"


@override_settings(PARLEY_LOGIN_MAX_FAILURES=2)
def test_the_counter_key_holds_no_typed_name(acme):
    """Whatever was typed (an e-mail, spaces, NUL, 5,000 characters) counts against one
    digest key: the name itself never reaches Redis, and any text is safe to count."""
    client = support.tenant_client("acme")
    for typed in ("Agent@Acme.test ", "superuser status", "a\x00b", "x" * 5000):
        _attempt(client, typed, "wrong")
    _attempt(client, "agent@acme.test", "wrong")
    store = redis.Redis.from_url(settings.REDIS_URL)
    keys = [k.decode("utf-8", "replace") for k in store.scan_iter("*login-fail:user:*")]
    assert keys and all("@" not in k and " " not in k for k in keys)
    assert all(len(k.rsplit(":", 1)[1]) == 64 for k in keys)
    # "Agent@Acme.test " and "agent@acme.test" are one account: locked after those two.
    refused = _attempt(client, "agent@acme.test", support.PASSWORD, ip="10.9.9.9")
    assert "Too many failed sign-ins" in refused.content.decode()
