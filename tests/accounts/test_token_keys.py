"""Token-signing keys in the keyring: per tenant, wrapped, named by ``kid``,
rotated with a grace window for the previous version (command and page, audited)."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from io import StringIO

import jwt
import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import SecurityPolicy
from accounts.policy import Perm, role_has
from audit.models import AuditEvent
from parley.keyring import signing
from parley.keyring.services import token_key_rotate
from parley.models import WrappedKey
from tenants.migrating import _ensure_tenant_keys
from tests import support

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_counters")]

TOKEN, REFRESH, ME = "/api/v1/auth/token/", "/api/v1/auth/token/refresh/", "/api/v1/me/"


@pytest.fixture
def no_mfa(acme):
    with tenant_context(acme):
        SecurityPolicy.objects.update_or_create(pk=1, defaults={"mfa_roles": []})
    connection.set_schema_to_public()


def _pair(slug="acme", email="agent@acme.test") -> dict:
    response = support.tenant_client(slug).post(
        TOKEN, {"username": email, "password": support.PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _me(access, slug="acme"):
    return support.tenant_client(slug).get(ME, HTTP_AUTHORIZATION=f"Bearer {access}")


def _refresh(refresh, slug="acme"):
    return support.tenant_client(slug).post(
        REFRESH, {"refresh": refresh}, content_type="application/json"
    )


def _kid(raw: str) -> str:
    return jwt.get_unverified_header(raw)["kid"]


def _rotate(tenant, **kwargs) -> signing.Rotation:
    with tenant_context(tenant):
        rotation = token_key_rotate(**kwargs)
    connection.set_schema_to_public()
    return rotation


def _end_grace(tenant, kid: str) -> None:
    """Move the previous version's retirement back past the grace window."""
    past = timezone.now() - timedelta(seconds=settings.PARLEY_TOKEN_KEY_GRACE_SECONDS + 1)
    WrappedKey.objects.filter(
        schema_name=tenant.schema_name, purpose="token", version=signing.version_of(kid)
    ).update(retired_at=past)
    signing.forget(tenant.schema_name)


def test_it_signs_with_a_wrapped_key_of_the_tenant_named_by_kid(acme, globex, no_mfa):
    pair = _pair()
    active = WrappedKey.objects.get(schema_name=acme.schema_name, purpose="token", state="active")
    assert _kid(pair["access"]) == _kid(pair["refresh"]) == f"v{active.version}"
    assert active.wrapped.startswith("local:v1:")  # stored only wrapped by the KEK
    acme_kid, acme_key = signing.signing_key(acme.schema_name)
    _, globex_key = signing.signing_key(globex.schema_name)
    assert len(acme_key) == 32 and acme_key != globex_key
    assert acme_key.hex() not in active.wrapped
    jwt.decode(
        pair["access"], acme_key, algorithms=["HS256"], audience=f"parley:{acme.schema_name}"
    )


def test_it_keeps_tokens_of_the_previous_key_through_the_grace_window_and_not_after(acme, no_mfa):
    before = _pair()
    old_kid = _kid(before["access"])
    rotation = _rotate(acme)
    assert rotation.previous == signing.version_of(old_kid)
    assert rotation.previous_valid_until - timezone.now() > timedelta(
        seconds=settings.PARLEY_TOKEN_KEY_GRACE_SECONDS - 60
    )
    after = _pair()
    assert _kid(after["access"]) == f"v{rotation.version}" != old_kid

    # Within the grace window: old access and refresh tokens work; refreshing
    # hands out tokens under the new kid.
    assert _me(before["access"]).status_code == 200
    refreshed = _refresh(before["refresh"])
    assert refreshed.status_code == 200
    assert _kid(refreshed.json()["access"]) == f"v{rotation.version}"
    assert _me(refreshed.json()["access"]).status_code == 200

    # After it: whatever the previous key signed is refused; the new one works.
    late = _pair()
    old_signed = _pair()  # issued now, but pretend by the old key: sign it with that key
    claims = jwt.decode(
        old_signed["access"], options={"verify_signature": False}, algorithms=["HS256"]
    )
    old_key = signing.verification_key(acme.schema_name, old_kid)
    still_old = jwt.encode(claims, old_key, algorithm="HS256", headers={"kid": old_kid})
    assert _me(still_old).status_code == 200
    _end_grace(acme, old_kid)
    for token in (before["access"], still_old):
        response = _me(token)
        assert response.status_code == 401 and response.json()["code"] == "token_invalid"
    assert _refresh(before["refresh"]).json()["code"] == "token_invalid"
    assert _me(late["access"]).status_code == 200


def test_it_refuses_the_previous_key_at_once_when_rotated_immediately(acme, no_mfa):
    before = _pair()
    old_kid = _kid(before["access"])
    rotation = _rotate(acme, immediately=True)
    assert rotation.previous_valid_until is None
    response = _me(before["access"])
    assert response.status_code == 401 and response.json()["code"] == "token_invalid"
    old = WrappedKey.objects.get(
        schema_name=acme.schema_name, purpose="token", version=signing.version_of(old_kid)
    )
    assert old.state == WrappedKey.State.DESTROYED and old.wrapped == ""
    assert _me(_pair()["access"]).status_code == 200


def test_it_destroys_versions_past_their_grace_at_the_next_rotation(acme, no_mfa):
    first = _rotate(acme)
    _end_grace(acme, signing.kid_for(first.previous))
    _rotate(acme)
    rows = dict(
        WrappedKey.objects.filter(schema_name=acme.schema_name, purpose="token").values_list(
            "version", "state"
        )
    )
    assert rows[first.previous] == WrappedKey.State.DESTROYED
    assert rows[first.version] == WrappedKey.State.RETIRED  # still in its grace window


def test_the_command_rotates_and_audits(acme, no_mfa):
    before = _pair()
    out = StringIO()
    call_command("keys_rotate_token", "--tenant", "acme", stdout=out)
    connection.set_schema_to_public()
    assert "still verifies until" in out.getvalue()
    assert _me(before["access"]).status_code == 200
    with tenant_context(acme):
        event = AuditEvent.objects.filter(action="key.token_signing_rotated").latest("id")
    connection.set_schema_to_public()
    assert event.details["previous_kid"] == _kid(before["access"])
    assert event.details["immediately"] is False

    call_command("keys_rotate_token", "--tenant", "acme", "--immediately", stdout=out)
    connection.set_schema_to_public()
    assert "destroyed" in out.getvalue()


@pytest.mark.parametrize("role", support.ROLES)
def test_the_security_page_rotates_for_owners_only_with_step_up(acme, role, no_mfa):
    allowed = role_has(role, Perm.KEYS_ROTATE)
    stale = support.signed_in(acme, f"{role}@acme.test", step_up=False)
    response = stale.post("/settings/security/rotate-token-key/")
    assert response.status_code == (302 if allowed else 403)
    if allowed:  # no fresh code: a detour to step-up, nothing rotated
        assert response["Location"].startswith("/mfa/step-up/")
    client = support.signed_in(acme, f"{role}@acme.test")
    before = _pair(email="agent2@acme.test")  # a user without a device: no code needed
    response = client.post("/settings/security/rotate-token-key/", {"immediately": "1"})
    assert response.status_code == (302 if allowed else 403)
    with tenant_context(acme):
        events = list(AuditEvent.objects.filter(action="key.token_signing_rotated"))
    connection.set_schema_to_public()
    assert len(events) == (1 if allowed else 0)
    assert (_me(before["access"]).status_code == 401) is allowed
    if allowed:
        assert "API token signing key" in client.get("/settings/security/").content.decode()


def test_a_tenant_older_than_token_keys_gets_one_at_the_first_sign_in(acme, no_mfa):
    WrappedKey.objects.filter(schema_name=acme.schema_name, purpose="token").delete()
    signing.forget(acme.schema_name)
    pair = _pair()
    created = WrappedKey.objects.get(schema_name=acme.schema_name, purpose="token")
    assert created.state == "active" and _kid(pair["access"]) == f"v{created.version}"
    assert _me(pair["access"]).status_code == 200


def test_migrating_gives_every_tenant_a_token_key(acme, globex):
    WrappedKey.objects.filter(purpose="token").delete()
    _ensure_tenant_keys([acme.schema_name, globex.schema_name])
    assert set(
        WrappedKey.objects.filter(purpose="token", state="active").values_list(
            "schema_name", flat=True
        )
    ) == {acme.schema_name, globex.schema_name}
    assert WrappedKey.objects.filter(schema_name=acme.schema_name, purpose="data").count() >= 1


def test_an_immediate_rotation_stops_old_tokens_in_processes_that_have_not_reloaded(
    acme, no_mfa, django_capture_on_commit_callbacks
):
    before = _pair()
    old_kid = _kid(before["access"])
    # What another process still holds: the old version, active, freshly read.
    stale = signing._load(acme.schema_name)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            _rotate(acme, immediately=True)
        signing._tables[acme.schema_name] = dataclasses.replace(stale, loaded_at=time.monotonic())
        assert signing.verification_key(acme.schema_name, old_kid) is not None  # stale indeed
        response = _me(before["access"])
        assert response.status_code == 401 and response.json()["code"] == "token_invalid"
        assert _refresh(before["refresh"]).json()["code"] == "token_invalid"
    finally:
        signing.forget(acme.schema_name)
        # Redis outlives the test's rolled-back transaction: the mark must not.
        with tenant_context(acme):
            cache.delete(signing.destroyed_key(old_kid))
        connection.set_schema_to_public()
