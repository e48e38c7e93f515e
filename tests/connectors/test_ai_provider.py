"""The AI provider connector: page, API, services and client, against the local fake
OpenAI-compatible server (tests/fakes/llm.py). The key is write-only everywhere."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings
from django_tenants.utils import tenant_context

from accounts.policy import Perm, role_has
from audit.models import AuditEvent
from connectors.ai import client as ai_client
from connectors.ai import services as ai_services
from connectors.models import AiProvider, Credential
from tests import support
from tests.fakes.llm import FakeLLM

KEY = "sk-test-MARKER-4Jd8Qp2Lx7Vn3Rz6"
API = "/api/v1/ai-providers/"
PAGE = "/connectors/ai/"


@pytest.fixture
def llm():
    with FakeLLM(key=KEY) as fake:
        yield fake


def _user(role: str):
    return get_user_model().objects.get(email=f"{role}@acme.test")


def _body(llm, **over) -> dict:
    return {
        "name": "OpenAI",
        "base_url": llm.base_url,
        "model": "gpt-4o-mini",
        "api_key": KEY,
        "timeout_seconds": 5,
        "max_tokens": 300,
        **over,
    }


def _counts(acme) -> tuple[int, int]:
    with tenant_context(acme):
        return AiProvider.objects.count(), Credential.objects.count()


# --------------------------------------------------------------------------- write-only key


@pytest.mark.django_db
def test_it_stores_the_key_vaulted_and_never_shows_it(acme, llm, caplog):
    caplog.set_level(logging.DEBUG)
    client = support.signed_in(acme, "admin@acme.test")
    created = client.post(API, _body(llm), content_type="application/json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert "api_key" not in body and body["key_last4"] == KEY[-4:]
    assert body["health"] == "unknown" and body["timeout_seconds"] == 5
    pk = body["id"]
    tested = client.post(f"{API}{pk}/test/")
    assert tested.json() == {"ok": True, "code": "ok", "http_status": 200}
    responses = [
        created,
        tested,
        client.get(API),
        client.get(f"{API}{pk}/"),
        client.patch(f"{API}{pk}/", {"model": "gpt-4o"}, content_type="application/json"),
        client.get(PAGE),
        client.get(f"{PAGE}{pk}/"),
        client.post(f"{PAGE}{pk}/test/", follow=True),
        client.get("/connectors/credentials/"),
        client.get("/api/schema/"),
        support.signed_in(acme, "owner@acme.test").get("/audit/"),
    ]
    for response in responses:
        assert response.status_code < 400, (response.status_code, response.content[:300])
        assert KEY.encode() not in response.content
    assert KEY not in caplog.text
    # What the provider got: the key as a bearer token, a chat-completions body, no tools.
    sent = llm.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert set(sent.json) == {"model", "messages", "max_tokens"}
    with tenant_context(acme):
        provider = AiProvider.objects.select_related("api_key").get(pk=pk)
        assert provider.health == AiProvider.Health.OK and provider.model == "gpt-4o"
        credential = provider.api_key
        assert (credential.kind, credential.connector) == ("api_key", "openai")
        assert KEY.encode() not in bytes(credential.secret_ct)
        events = AuditEvent.objects.filter(target_type="ai_provider")
        actions = set(events.values_list("action", flat=True))
        details = " ".join(str(e.details) for e in AuditEvent.objects.all())
    assert {"ai_provider.created", "ai_provider.tested", "ai_provider.updated"} <= actions
    assert KEY not in details


@pytest.mark.django_db
def test_it_updates_replaces_the_key_and_deletes(acme, llm):
    client = support.signed_in(acme, "integrator@acme.test")
    pk = client.post(API, _body(llm), content_type="application/json").json()["id"]
    new_key = "sk-test-NEWKEY-0000-9z8y"
    changed = client.patch(
        f"{API}{pk}/",
        {"api_key": new_key, "enabled": False, "timeout_seconds": "30"},
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["key_last4"] == "9z8y" and changed.json()["enabled"] is False
    assert changed.json()["timeout_seconds"] == 30
    with tenant_context(acme):
        event = AuditEvent.objects.filter(action="ai_provider.updated").latest("id")
        assert event.details["key_replaced"] is True
        assert set(event.details["changes"]) == {"enabled", "timeout_seconds"}
        credential_id = AiProvider.objects.get(pk=pk).api_key_id
    # A disabled provider is not tested (nothing is sent).
    refused = client.post(f"{API}{pk}/test/")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid"
    assert llm.requests == []
    assert client.delete(f"{API}{pk}/").status_code == 204
    with tenant_context(acme):
        assert not AiProvider.objects.filter(pk=pk).exists()
        assert not Credential.objects.filter(pk=credential_id).exists()
        assert AuditEvent.objects.filter(action="ai_provider.deleted").exists()
    assert client.get(f"{API}{pk}/").status_code == 404


# --------------------------------------------------------------------------- the test button


@pytest.mark.django_db
def test_a_refused_key_marks_the_provider_unhealthy(acme, llm):
    client = support.signed_in(acme, "owner@acme.test")
    pk = client.post(API, _body(llm), content_type="application/json").json()["id"]
    llm.fail(401)
    result = client.post(f"{API}{pk}/test/").json()
    assert result == {"ok": False, "code": "auth", "http_status": 401}
    got = client.get(f"{API}{pk}/").json()
    assert (got["health"], got["last_error_code"]) == ("auth_failed", "auth")
    # The page says so, and a new key gives it a fresh start.
    assert b"Key refused" in client.get(PAGE).content
    client.patch(f"{API}{pk}/", {"api_key": KEY}, content_type="application/json")
    assert client.get(f"{API}{pk}/").json()["health"] == "unknown"
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="ai_provider.auth_failed").count() == 1
        assert AuditEvent.objects.filter(action="ai_provider.tested", outcome="failed").exists()


@pytest.mark.django_db
def test_the_client_classifies_every_failure(acme, llm):
    with tenant_context(acme):
        provider = ai_services.ai_provider_create(
            by=_user("owner"), **{**_body(llm), "timeout_seconds": 1}
        )
        messages = [{"role": "user", "content": "hi"}]
        llm.reply("Hello there")
        assert ai_client.chat_complete(provider, messages, max_tokens=9999) == "Hello there"
        assert llm.requests[-1].json["max_tokens"] == 300  # capped by the provider's setting
        cases = [
            (lambda: (llm.fail(500), llm.fail(500)), "unavailable"),
            (lambda: (llm.delay(2), llm.delay(2)), "timeout"),
            (lambda: llm.fail(400), "rejected"),
            (lambda: llm.fail(403), "auth"),
            (lambda: llm.malformed("not-json"), "malformed"),
        ]
        for queue, code in cases:
            queue()
            with pytest.raises(ai_client.AiProviderError) as caught:
                ai_client.chat_complete(provider, messages)
            assert caught.value.code == code
        with pytest.raises(ValueError):
            ai_client.chat_complete(provider, [{"role": "tool", "content": "x"}])


# --------------------------------------------------------------------------- who may


@pytest.mark.django_db
@pytest.mark.parametrize("role", support.ROLES)
def test_only_connector_managers_manage_the_provider(acme, llm, role):
    client = support.signed_in(acme, f"{role}@acme.test")
    allowed = role_has(role, Perm.CONNECTORS_MANAGE)
    assert client.get(API).status_code == (200 if allowed else 403)
    assert client.get(PAGE).status_code == (200 if allowed else 403)
    created = client.post(API, _body(llm, name=f"p-{role}"), content_type="application/json")
    assert created.status_code == (201 if allowed else 403)
    page = client.post(PAGE, {**_body(llm, name=f"q-{role}"), "enabled": "on"})
    assert page.status_code == (302 if allowed else 403)
    with tenant_context(acme):
        assert AiProvider.objects.filter(name__endswith=role).count() == (2 if allowed else 0)


@pytest.mark.django_db
def test_a_marketer_is_refused_by_the_service_itself(acme, llm):
    with tenant_context(acme):
        marketer = _user("marketer")
        with pytest.raises(PermissionDenied):
            ai_services.ai_provider_create(by=marketer, **_body(llm))
        provider = ai_services.ai_provider_create(by=_user("owner"), **_body(llm))
        for call in (
            lambda: ai_services.ai_provider_update(by=marketer, provider=provider, model="x"),
            lambda: ai_services.ai_provider_delete(by=marketer, provider=provider),
            lambda: ai_services.ai_provider_test(by=marketer, provider=provider),
            lambda: ai_services.ai_provider_create(by=None, **_body(llm, name="anon")),
        ):
            with pytest.raises(PermissionDenied):
                call()
        assert AiProvider.objects.count() == 1
    assert llm.requests == []


@pytest.mark.django_db
def test_changes_need_a_fresh_step_up(acme, llm):
    client = support.signed_in(acme, "owner@acme.test", step_up=False)
    assert client.get(PAGE).status_code == 200 and client.get(API).status_code == 200
    stale = client.post(API, _body(llm), content_type="application/json")
    assert stale.status_code == 403 and stale.json()["code"] == "step_up_required"
    page = client.post(PAGE, {**_body(llm), "enabled": "on"})
    assert page.status_code == 302 and page["Location"].startswith("/mfa/step-up/")
    assert _counts(acme)[0] == 0


# --------------------------------------------------------------------------- hostile input

HOSTILE = [
    ("name", "Open\x00AI"),
    ("name", "bad \ud800 name"),
    ("name", ""),
    ("name", ["list"]),
    ("name", {"deep": {"deeper": {}}}),
    ("name", "x" * 81),
    ("model", "gpt\x00"),
    ("model", "gpt 4 with spaces"),
    ("model", "\ud83d"),
    ("model", 42),
    ("api_key", "short"),
    ("api_key", "sk-test key with spaces"),
    ("api_key", "sk-test-\x00-abcdefgh"),
    ("api_key", "sk-test-\ud800-abcdefgh"),
    ("api_key", "sk-тест-ключ-ключ"),
    ("api_key", 12345678901234),
    ("api_key", "k" * 5000),
    ("timeout_seconds", "١٢"),
    ("timeout_seconds", "²"),
    ("timeout_seconds", 10**30),
    ("timeout_seconds", "9" * 5000),
    ("timeout_seconds", 0),
    ("timeout_seconds", 121),
    ("timeout_seconds", -5),
    ("timeout_seconds", 1.5),
    ("timeout_seconds", True),
    ("max_tokens", "٣٠٠"),
    ("max_tokens", 2**64),
    ("max_tokens", 8193),
    ("enabled", "yes"),
    ("base_url", "ftp://api.example.com/v1"),
    ("base_url", "http://api.example.com/v1"),  # http, not loopback
    ("base_url", "https://user:pw@api.example.com/v1"),
    ("base_url", "https://api.example.com/v1?key=x"),
    ("base_url", "https://api.example.com/v1#frag"),
    ("base_url", "javascript:alert(1)"),
    ("base_url", "https://exa mple.com"),
    ("base_url", "https://api.example.com:99999/v1"),
    ("base_url", "https://"),
    ("base_url", "https://bücher.example/v1"),
    ("base_url", "https://api.example.com/\x00"),
    ("base_url", "https://" + "a" * 300 + ".com"),
    ("base_url", "//api.example.com/v1"),
    ("base_url", "https://[::1/v1"),
    ("base_url", "https://[nothex::]/v1"),
    ("base_url", "https://a..b/v1"),
    ("base_url", 7),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"), HOSTILE, ids=[f"{f}-{i}" for i, (f, _) in enumerate(HOSTILE)]
)
def test_hostile_api_input_is_a_4xx_with_a_code_and_nothing_is_stored(acme, llm, field, value):
    client = support.signed_in(acme, "admin@acme.test")
    before = _counts(acme)
    response = client.post(API, _body(llm, **{field: value}), content_type="application/json")
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert response.json()["code"] in ("invalid", "parse_error")
    assert _counts(acme) == before
    # The same on an update: the stored provider keeps its values.
    pk = client.post(API, _body(llm, name="kept"), content_type="application/json").json()["id"]
    patched = client.patch(f"{API}{pk}/", {field: value}, content_type="application/json")
    assert 400 <= patched.status_code < 500 and patched.json()["code"] in ("invalid", "parse_error")
    after = client.get(f"{API}{pk}/").json()
    assert (after["name"], after["model"], after["base_url"], after["key_last4"]) == (
        "kept",
        "gpt-4o-mini",
        llm.base_url,
        KEY[-4:],
    )
    assert llm.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Open\x00AI"),
        ("model", "gpt 4"),
        ("api_key", "short"),
        ("timeout_seconds", "١٢"),
        ("timeout_seconds", "99999999999999999999999"),
        ("max_tokens", "0"),
        ("base_url", "http://api.example.com/v1"),
        ("base_url", "https://user:pw@api.example.com/v1"),
        ("base_url", "not a url"),
    ],
)
def test_hostile_form_input_is_a_400_and_nothing_is_stored(acme, llm, field, value):
    client = support.signed_in(acme, "owner@acme.test")
    before = _counts(acme)
    response = client.post(PAGE, {**_body(llm), field: value, "enabled": "on"})
    assert response.status_code == 400
    assert b'class="field-error"' in response.content
    assert KEY.encode() not in response.content
    assert _counts(acme) == before


@pytest.mark.django_db
def test_a_duplicate_name_and_a_json_body_that_is_not_an_object(acme, llm):
    client = support.signed_in(acme, "owner@acme.test")
    assert client.post(API, _body(llm), content_type="application/json").status_code == 201
    again = client.post(API, _body(llm, name="openai"), content_type="application/json")
    assert again.status_code == 400 and "name" in again.json()["errors"]
    for raw in ("[]", '"x"', "null", '{"name": "\\u0000"}', "{" * 200 + "}" * 200):
        response = client.post(API, raw, content_type="application/json")
        assert 400 <= response.status_code < 500, raw
        assert "code" in response.json()
    assert _counts(acme)[0] == 1


@pytest.mark.django_db
def test_base_urls_follow_the_channel_rule(acme):
    clean = ai_services.base_url_clean
    assert clean("https://api.openai.com/v1/") == "https://api.openai.com/v1"
    assert clean("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"
    assert clean("http://localhost:11434/v1") == "http://localhost:11434/v1"
    assert clean("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    with override_settings(PRODUCTION=True), pytest.raises(ValidationError):
        clean("http://127.0.0.1:8080/v1")
    with (
        override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=False),
        pytest.raises(ValidationError, match="Refused"),
    ):
        clean("https://10.0.0.5/v1")
