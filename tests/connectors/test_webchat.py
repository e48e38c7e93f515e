"""Web chat endpoints: visitor tokens, CORS and frame-ancestors, limits, hostile input,
the visitor's own conversation only, and replies delivered by the poll (never over HTTP)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from connectors import channels, delivery, tasks
from connectors.adapters import registry
from connectors.adapters.base import OutboundMessage, PayloadInvalid
from connectors.models import Channel, InboundEvent
from connectors.webchat import services
from conversations import access
from conversations.models import Conversation, Inbox, Message
from conversations.services import body_of, note_add, reply_send
from tests import support

pytestmark = pytest.mark.django_db

ORIGIN = "https://shop.example.com"


def _user(email):
    return get_user_model().objects.get(email=email)


def _channel(tenant, origins=(ORIGIN,)) -> Channel:
    with tenant_context(tenant):
        admin = _user(f"admin@{tenant.slug}.test")
        inbox = access.inbox_create(by=admin, name=f"Web {uuid.uuid4().hex[:6]}")
        channel = services.webchat_channel_create(
            by=admin,
            name=f"Chat {uuid.uuid4().hex[:6]}",
            allowed_origins=list(origins),
            inbox_id=inbox.pk,
        )
    connection.set_schema_to_public()
    return channel


def _ip() -> str:
    # Each test its own address: per-address limits do not leak between tests.
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


class Visitor:
    def __init__(self, slug, channel, ip=None):
        self.client = support.tenant_client(slug)
        self.base = f"/webchat/{channel.public_id}/"
        self.ip = ip or _ip()
        self.token = None

    def start(self, **extra):
        response = self.client.post(self.base + "session/", REMOTE_ADDR=self.ip, **extra)
        if response.status_code == 201:
            self.token = response.json()["token"]
        return response

    def _auth(self, token):
        token = self.token if token is None else token
        return {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

    def send(self, text="Hello there", *, client_id=None, token=None, raw=None, **extra):
        data = (
            raw
            if raw is not None
            else json.dumps({"text": text, "client_id": client_id or uuid.uuid4().hex})
        )
        return self.client.post(
            self.base + "messages/",
            data=data,
            content_type=extra.pop("content_type", "application/json"),
            REMOTE_ADDR=self.ip,
            **self._auth(token),
            **extra,
        )

    def poll(self, after=0, *, token=None, **extra):
        return self.client.get(
            self.base + "messages/",
            {"after": after},
            REMOTE_ADDR=self.ip,
            **self._auth(token),
            **extra,
        )


# --- tokens -------------------------------------------------------------------------------------


def test_it_refuses_missing_forged_expired_and_foreign_tokens(acme, globex):
    channel = _channel(acme)
    other = _channel(acme)
    foreign = _channel(globex)
    visitor = Visitor("acme", channel)
    assert visitor.start().status_code == 201
    assert visitor.poll().status_code == 200

    assert visitor.poll(token="").json()["code"] == "token_missing"
    # A token for another channel of the same tenant, and one of another tenant.
    on_other = Visitor("acme", other)
    on_other.start()
    abroad = Visitor("globex", foreign)
    abroad.start()
    forged = signing.dumps(
        {"t": "t_acme", "c": channel.public_id, "v": "A" * 22}, salt="guessed", compress=False
    )
    tampered = visitor.token[:-3] + ("AAA" if not visitor.token.endswith("AAA") else "BBB")
    for token in (on_other.token, abroad.token, forged, tampered, "x" * 600, "ünïcode"):
        response = visitor.poll(token=token)
        assert response.status_code == 401, token
        assert response.json()["code"] == "token_invalid"
        assert response["WWW-Authenticate"].startswith("Bearer")
    # The other channel's visitor token at this channel's messages endpoint: refused too.
    assert visitor.send(token=on_other.token).json()["code"] == "token_invalid"

    # Expired: issued longer ago than the lifetime.
    with override_settings(PARLEY_WEBCHAT_TOKEN_SECONDS=60):
        real_time = time.time
        signing.time.time = lambda: real_time() - 120
        try:
            with tenant_context(acme):
                old, _ = services.token_issue(channel=channel)
        finally:
            signing.time.time = real_time
        connection.set_schema_to_public()
        response = visitor.poll(token=old)
        assert response.status_code == 401
        assert response.json()["code"] == "token_expired"


def test_it_refreshes_a_valid_token_for_the_same_visitor(acme):
    channel = _channel(acme)
    visitor = Visitor("acme", channel)
    visitor.start()
    assert visitor.send("first").status_code == 201
    response = visitor.client.post(
        visitor.base + "session/",
        REMOTE_ADDR=visitor.ip,
        HTTP_AUTHORIZATION=f"Bearer {visitor.token}",
    )
    assert response.status_code == 200
    fresh = response.json()["token"]
    found = visitor.poll(token=fresh).json()["messages"]
    assert [m["text"] for m in found] == ["first"]
    # A refresh with a bad token is refused, not turned into a new visitor.
    bad = visitor.client.post(
        visitor.base + "session/", REMOTE_ADDR=visitor.ip, HTTP_AUTHORIZATION="Bearer nope"
    )
    assert bad.status_code == 401 and bad.json()["code"] == "token_invalid"


def test_a_disabled_or_unknown_channel_answers_404(acme):
    channel = _channel(acme)
    with tenant_context(acme):
        Channel.objects.filter(pk=channel.pk).update(enabled=False)
    connection.set_schema_to_public()
    visitor = Visitor("acme", channel)
    assert visitor.start().json()["code"] == "unknown_channel"
    assert support.tenant_client("acme").get(visitor.base).status_code == 404
    # An API channel's public id is no web chat.
    assert support.tenant_client("acme").post("/webchat/nope/session/").status_code == 404


# --- the visitor's own conversation ----------------------------------------------------------


def test_a_message_reaches_the_inbox_and_the_reply_comes_back_by_poll(acme):
    channel = _channel(acme)
    visitor = Visitor("acme", channel)
    visitor.start()
    sent = visitor.send("Where is my order?", client_id="c1")
    assert sent.status_code == 201, sent.content
    assert visitor.send("Where is my order?", client_id="c1").status_code == 200  # idempotent
    with tenant_context(acme):
        conversation = Conversation.objects.get(inbox__channel=channel)
        stored = Message.objects.get(conversation=conversation)
        assert body_of(stored) == "Where is my order?"
        assert stored.direction == "in"
        # The visitor's message showed the channel working, as a stored webhook
        # event shows it for the other kinds.
        channel.refresh_from_db()
        assert channel.health == Channel.Health.OK and channel.last_event_at is not None
        admin = _user("admin@acme.test")
        reply = reply_send(
            by=admin, conversation_id=conversation.pk, body="On its way <b>today</b>"
        )
        note_add(by=admin, conversation_id=conversation.pk, body="PRIVATE-NOTE-MARK")
        # The generic delivery task leaves it for the visitor: not sent anywhere,
        # not failed, no attempt counted, the channel's health untouched.
        assert delivery.delivery_attempt(message_id=reply.pk) == "awaiting_visitor"
        assert tasks.message_deliver.run(reply.pk)["delivery"] == "awaiting_visitor"
        reply.refresh_from_db()
        assert reply.delivery == "queued" and reply.delivery_attempts == 0
        assert reply.delivery_error == ""
        channel.refresh_from_db()
        assert channel.health == Channel.Health.OK and channel.last_error_code == ""
        assert not AuditEvent.objects.filter(
            action="message.delivery_failed", target_id=str(reply.pk)
        ).exists()
    connection.set_schema_to_public()

    answer = visitor.poll(after=sent.json()["message"]["id"]).json()
    assert [(m["from"], m["text"]) for m in answer["messages"]] == [
        ("agent", "On its way <b>today</b>")
    ]
    assert answer["cursor"] == reply.pk
    assert "PRIVATE-NOTE-MARK" not in json.dumps(visitor.poll().json())
    # After a reconnect from the cursor: nothing again (no duplicates).
    assert visitor.poll(after=answer["cursor"]).json()["messages"] == []
    read = visitor.client.post(
        visitor.base + "read/",
        data=json.dumps({"up_to": reply.pk}),
        content_type="application/json",
        REMOTE_ADDR=visitor.ip,
        HTTP_AUTHORIZATION=f"Bearer {visitor.token}",
    )
    assert read.json() == {"read": 1}
    with tenant_context(acme):
        reply.refresh_from_db()
        assert reply.delivery == "read"


def test_a_visitor_sees_only_their_own_conversation(acme):
    channel = _channel(acme)
    first, second = Visitor("acme", channel), Visitor("acme", channel)
    first.start()
    second.start()
    first.send("FIRST-VISITOR-SECRET")
    assert second.poll().json()["messages"] == []
    second.send("second's words")
    texts = [m["text"] for m in second.poll().json()["messages"]]
    assert texts == ["second's words"]


def test_the_webchat_adapter_is_registered_and_sends_nothing():
    adapter = registry.get("webchat")
    assert adapter.PULL is True
    assert adapter.verify({}, b"{}", {}) is False
    with pytest.raises(PayloadInvalid) as caught:
        adapter.parse(b'{"any": "thing"}')
    assert caught.value.code == "webhook_unsupported"

    def no_http(*args, **kwargs):
        raise AssertionError("web chat never sends over HTTP")

    result = adapter.send(OutboundMessage(recipient_id="web:x", text="hi"), {}, {}, no_http)
    assert result.external_id == ""


def test_the_webchat_adapter_is_a_leaf_like_every_adapter():
    # Pure: importing it loads no model, no service, no tenant code.
    code = (
        "import sys, connectors.webchat.adapter; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('conversations', 'accounts', 'tenants', 'audit', 'bots') "
        "or m.startswith(('connectors.models', 'connectors.channels', 'connectors.webchat.services', "
        "'django.db.models'))); print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_poll_waits_for_news_and_answers_in_bounded_queries(acme, django_assert_max_num_queries):
    channel = _channel(acme)
    visitor = Visitor("acme", channel)
    visitor.start()
    first = visitor.send("hello").json()["message"]
    started = time.monotonic()
    with override_settings(PARLEY_WEBCHAT_POLL_SECONDS=2):
        empty = visitor.client.get(
            visitor.base + "messages/",
            {"after": first["id"], "wait": "30"},  # clamped to the setting
            REMOTE_ADDR=visitor.ip,
            HTTP_AUTHORIZATION=f"Bearer {visitor.token}",
        )
    waited = time.monotonic() - started
    assert empty.json() == {"messages": [], "cursor": first["id"]}
    assert 1.5 <= waited < 6
    with tenant_context(acme):
        conversation = Conversation.objects.get(inbox__channel=channel)
        for n in range(5):
            reply_send(by=_user("admin@acme.test"), conversation_id=conversation.pk, body=f"r{n}")
    connection.set_schema_to_public()
    with django_assert_max_num_queries(40):
        answer = visitor.poll(after=first["id"]).json()
    assert [m["text"] for m in answer["messages"]] == [f"r{n}" for n in range(5)]
    with django_assert_max_num_queries(12):
        assert visitor.poll(after=answer["cursor"]).json()["messages"] == []


# --- origins ------------------------------------------------------------------------------


def test_cors_and_frame_ancestors_name_only_configured_origins(acme):
    channel = _channel(acme, origins=(ORIGIN, "http://localhost:3000"))
    client = support.tenant_client("acme")
    base = f"/webchat/{channel.public_id}/"
    frame = client.get(base)
    assert frame.status_code == 200
    csp = frame["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://shop.example.com http://localhost:3000" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "X-Frame-Options" not in frame

    preflight = client.options(base + "session/", HTTP_ORIGIN=ORIGIN)
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == ORIGIN
    allowed = client.post(base + "session/", HTTP_ORIGIN=ORIGIN, REMOTE_ADDR=_ip())
    assert allowed.status_code == 201 and allowed["Access-Control-Allow-Origin"] == ORIGIN
    for origin in ("https://evil.example", "https://shop.example.com.evil.example", "null"):
        refused = client.post(base + "session/", HTTP_ORIGIN=origin, REMOTE_ADDR=_ip())
        assert refused.status_code == 403 and refused.json()["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in refused
        assert client.options(base + "session/", HTTP_ORIGIN=origin).status_code == 403


def test_it_validates_allowed_origins(acme):
    assert services.origins_clean(
        "https://a.example\nhttp://b.example:8080, https://a.example"
    ) == [
        "https://a.example",
        "http://b.example:8080",
    ]
    for bad in (
        "https://a.example/path",
        "ftp://a.example",
        "https://*.example",
        "https://u@a.example",
        "https://a.example:99999",
        "javascript:alert(1)",
        "https://a.example\x00",
        "ex\ud800",
    ):
        with pytest.raises(ValidationError):
            services.origins_clean([bad])
    with override_settings(PRODUCTION=True), pytest.raises(ValidationError):
        services.origin_clean("http://a.example")


# --- limits and hostile input -------------------------------------------------------------------


def test_it_throttles_per_visitor_and_per_ip_with_retry_after(acme):
    channel = _channel(acme)
    with override_settings(PARLEY_RATE_WEBCHAT_MESSAGE_PER_VISITOR="2/min"):
        visitor = Visitor("acme", channel)
        visitor.start()
        assert visitor.send("one").status_code == 201
        assert visitor.send("two").status_code == 201
        refused = visitor.send("three")
        assert refused.status_code == 429
        assert refused.json()["code"] == "throttled"
        assert int(refused["Retry-After"]) >= 1
    with override_settings(PARLEY_RATE_WEBCHAT_SESSION_PER_IP="2/min"):
        ip = _ip()
        assert Visitor("acme", channel, ip).start().status_code == 201
        assert Visitor("acme", channel, ip).start().status_code == 201
        refused = Visitor("acme", channel, ip).start()
        assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    with override_settings(PARLEY_RATE_WEBCHAT_MESSAGE_PER_IP="2/min"):
        ip = _ip()
        for n in range(2):
            each = Visitor("acme", channel, ip)
            each.start()
            assert each.send(f"ip {n}").status_code == 201
        third = Visitor("acme", channel, ip)
        third.start()
        refused = third.send("ip 3")
        assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
        assert Visitor("acme", channel).start().status_code == 201  # another address is fine
    with override_settings(PARLEY_RATE_WEBCHAT_PER_CHANNEL="1/min"):
        busy = _channel(acme)
        assert Visitor("acme", busy).start().status_code == 201
        assert Visitor("acme", busy).start().status_code == 429


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (json.dumps({"text": "a\x00b", "client_id": "c"}), 400, "invalid"),
        ('{"text": "\\ud800", "client_id": "c"}', 400, "invalid"),
        (json.dumps({"text": "x" * 2001, "client_id": "c"}), 400, "invalid"),
        (json.dumps({"text": "   ", "client_id": "c"}), 400, "invalid"),
        (json.dumps({"text": ["list"], "client_id": "c"}), 400, "invalid"),
        (json.dumps({"text": "hi", "client_id": "²"}), 400, "invalid"),
        (json.dumps({"text": "hi"}), 400, "invalid"),
        (json.dumps(["not", "an", "object"]), 400, "invalid_payload"),
        ("{not json", 400, "invalid_json"),
        ("[" * 500 + "]" * 500, 400, None),
        (json.dumps({"text": "y" * 20000, "client_id": "c"}), 413, "payload_too_large"),
        (json.dumps({"text": 10**400, "client_id": "c"}), 400, None),
    ],
)
def test_hostile_input_is_refused_with_a_code_and_nothing_stored(acme, raw, status, code):
    channel = _channel(acme)
    visitor = Visitor("acme", channel)
    visitor.start()
    response = visitor.send(raw=raw)
    assert response.status_code == status, response.content
    assert "code" in response.json()
    if code:
        assert response.json()["code"] == code
    with tenant_context(acme):
        assert not Message.objects.filter(conversation__inbox__channel=channel).exists()
        # A refused message is no sign of life: the channel's health is untouched.
        channel.refresh_from_db()
        assert channel.health == Channel.Health.UNKNOWN and channel.last_event_at is None


def test_html_is_stored_and_returned_as_inert_text(acme):
    channel = _channel(acme)
    visitor = Visitor("acme", channel)
    visitor.start()
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    assert visitor.send(hostile).status_code == 201
    assert (
        visitor.poll().json()["messages"][0]["text"] == hostile
    )  # JSON text; the widget uses textContent
    assert visitor.send(content_type="text/plain").json()["code"] == "unsupported_media_type"
    wrong = visitor.client.put(visitor.base + "messages/", REMOTE_ADDR=visitor.ip)
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    assert wrong["Allow"] == "GET, POST"
    assert visitor.poll(after="²").json()["code"] == "invalid"
    assert visitor.poll(after="-1").json()["code"] == "invalid"
    assert visitor.poll(after=str(2**70)).json()["code"] == "invalid"


def test_the_channels_page_lists_a_webchat_channel_and_refuses_to_rotate_it(acme):
    channel = _channel(acme)
    client = support.signed_in(acme, "integrator@acme.test")
    page = client.get("/connectors/channels/")
    assert page.status_code == 200
    # The snippet, shown as text (escaped).
    assert f"data-parley-channel=&quot;{channel.public_id}&quot;" in page.content.decode()
    assert ORIGIN in page.content.decode()
    assert "Not used yet" in page.content.decode()
    # A visitor writes: the list shows the channel working and its last event.
    visitor = Visitor("acme", channel)
    visitor.start()
    assert visitor.send("Hello").status_code == 201
    page = client.get("/connectors/channels/").content.decode()
    assert "Working" in page and "Not used yet" not in page
    with tenant_context(acme):
        channel.refresh_from_db()
    assert channel.last_event_at is not None
    refused = client.post(f"/connectors/channels/{channel.pk}/rotate/")
    assert refused.status_code == 302


def test_an_integrator_creates_a_webchat_on_the_channels_page(acme):
    with tenant_context(acme):
        inbox = access.inbox_create(
            by=_user("admin@acme.test"), name=f"Site {uuid.uuid4().hex[:6]}"
        )
    connection.set_schema_to_public()
    client = support.signed_in(acme, "integrator@acme.test")
    name = f"Shop chat {uuid.uuid4().hex[:6]}"
    bad = client.post(
        "/connectors/channels/webchat/",
        {
            "webchat-name": name,
            "webchat-allowed_origins": "https://shop.example/path",
            "webchat-inbox": inbox.pk,
        },
    )
    assert bad.status_code == 400
    assert "not an origin" in bad.content.decode()
    # An integrator may not create inboxes: an inbox must be picked.
    assert (
        client.post(
            "/connectors/channels/webchat/",
            {"webchat-name": name, "webchat-allowed_origins": ORIGIN},
        ).status_code
        == 400
    )
    ok = client.post(
        "/connectors/channels/webchat/",
        {
            "webchat-name": name,
            "webchat-allowed_origins": f"{ORIGIN}\nhttp://localhost:3000",
            "webchat-inbox": inbox.pk,
        },
    )
    assert ok.status_code == 302
    with tenant_context(acme):
        channel = Channel.objects.get(name=name)
        assert channel.kind == "webchat" and channel.signing_credential_id is None
        assert channel.settings["allowed_origins"] == [ORIGIN, "http://localhost:3000"]
        assert channel.inbox.pk == inbox.pk
        event = AuditEvent.objects.filter(action="channel.created", target_id=str(channel.pk)).get()
        assert event.details["kind"] == "webchat"
    connection.set_schema_to_public()
    agent = support.signed_in(acme, "agent@acme.test")
    assert (
        agent.post(
            "/connectors/channels/webchat/",
            {"webchat-name": "x", "webchat-allowed_origins": ORIGIN},
        ).status_code
        == 403
    )


def test_an_integrator_changes_the_allowed_sites_and_framing_follows(acme):
    channel = _channel(acme)
    client = support.signed_in(acme, "integrator@acme.test")
    url = f"/connectors/channels/{channel.pk}/origins/"
    assert (
        client.post(
            url, {"allowed_origins": "https://new.example https://b.example:8443"}
        ).status_code
        == 302
    )
    frame = support.tenant_client("acme").get(f"/webchat/{channel.public_id}/")
    assert (
        "frame-ancestors 'self' https://new.example https://b.example:8443"
        in frame["Content-Security-Policy"]
    )
    assert ORIGIN not in frame["Content-Security-Policy"]
    refused = support.tenant_client("acme").post(
        f"/webchat/{channel.public_id}/session/", HTTP_ORIGIN=ORIGIN, REMOTE_ADDR=_ip()
    )
    assert refused.status_code == 403
    # A bad list changes nothing.
    assert client.post(url, {"allowed_origins": "https://x.example/path"}).status_code == 302
    with tenant_context(acme):
        channel.refresh_from_db()
        assert channel.settings["allowed_origins"] == [
            "https://new.example",
            "https://b.example:8443",
        ]
        event = AuditEvent.objects.filter(
            action="channel.origins_changed", target_id=str(channel.pk)
        ).get()
        assert event.details["before"] == [ORIGIN]
    connection.set_schema_to_public()
    agent = support.signed_in(acme, "agent@acme.test")
    assert agent.post(url, {"allowed_origins": "https://evil.example"}).status_code == 403


# --- on the channel seam -----------------------------------------------------------------------------


def test_the_generic_webhook_refuses_webchat_posts_and_stores_nothing(acme):
    channel = _channel(acme)
    client = support.tenant_client("acme")
    url = f"/webhooks/webchat/{channel.public_id}/"
    body = json.dumps({"type": "message", "id": "m1", "body": "hi"})
    refused = client.post(url, data=body, content_type="application/json")
    assert refused.status_code == 401, refused.content
    assert refused.json()["code"]
    assert client.get(url, {"hub.challenge": "x"}).status_code == 403
    with tenant_context(acme):
        assert not InboundEvent.objects.filter(channel_id=channel.pk).exists()
        assert not Message.objects.filter(conversation__inbox__channel_id=channel.pk).exists()
        assert Channel.objects.get(pk=channel.pk).last_event_at is None


def test_beat_does_not_resend_replies_waiting_for_a_visitor(acme, monkeypatch):
    """A PULL kind's queued reply is not a lost enqueue: the resume beat skips it."""
    channel = _channel(acme)
    visitor = Visitor("acme", channel)
    visitor.start()
    assert visitor.send("Anyone there?").status_code == 201
    sent = []
    monkeypatch.setattr(tasks.message_deliver, "delay", lambda message_id: sent.append(message_id))
    with tenant_context(acme):
        conversation = Conversation.objects.get(inbox__channel=channel)
        reply = reply_send(by=_user("admin@acme.test"), conversation_id=conversation.pk, body="Yes")
        Message.objects.filter(pk=reply.pk).update(
            created_at=reply.created_at - timedelta(minutes=5)
        )
        assert Message.objects.get(pk=reply.pk).delivery == "queued"
        tasks.deliveries_resume()
    connection.set_schema_to_public()
    assert reply.pk not in sent
    assert delivery.pull_kinds() == ("webchat",)


def test_webchat_settings_go_through_the_generic_validator(acme):
    cleaned = channels.channel_settings_clean(
        kind="webchat", values={"allowed_origins": ["HTTPS://Shop.Example.com/"]}
    )
    assert cleaned["allowed_origins"] == ["https://shop.example.com"]
    assert len(cleaned["token_epoch"]) == 16
    kept = channels.channel_settings_clean(
        kind="webchat",
        values={"allowed_origins": [ORIGIN], "token_epoch": cleaned["token_epoch"]},
    )
    assert kept["token_epoch"] == cleaned["token_epoch"]
    for values in (
        {"allowed_origins": []},
        {"allowed_origins": ["https://shop.example.com/path"]},
        {"allowed_origins": ["*"]},
        {"allowed_origins": [ORIGIN], "token_epoch": "not-hex"},
        {"allowed_origins": [ORIGIN], "token_epoch": 12},
        {"allowed_origins": [ORIGIN], "outbound_url": "https://x.example"},
        {"allowed_origins": [ORIGIN + "\x00"]},
    ):
        with pytest.raises(ValidationError):
            channels.channel_settings_clean(kind="webchat", values=values)
    # The generic create (API and Meta kinds, with secrets) does not make web chats.
    with tenant_context(acme):
        with pytest.raises(ValidationError) as caught:
            channels.channel_create(
                by=_user("admin@acme.test"),
                name="Sneaky chat",
                kind="webchat",
                settings={"allowed_origins": [ORIGIN]},
            )
        assert "kind" in caught.value.message_dict
        assert not Channel.objects.filter(name="Sneaky chat").exists()
    connection.set_schema_to_public()


def test_the_demo_seed_is_idempotent_and_follows_the_origin(acme):
    with tenant_context(acme):
        owner, agent = _user("owner@acme.test"), _user("agent@acme.test")
        first = services.webchat_demo_ensure(
            by=owner, origin="http://acme.localhost:8000", members=[agent]
        )
        again = services.webchat_demo_ensure(
            by=owner, origin="http://acme.localhost:8000", members=[agent]
        )
        assert again.pk == first.pk
        assert Channel.objects.filter(kind="webchat", inbox__name=services.DEMO_INBOX).count() == 1
        moved = services.webchat_demo_ensure(
            by=owner, origin="http://acme.localhost:9000", members=[agent]
        )
        assert moved.pk == first.pk
        assert services.allowed_origins_of(moved) == ["http://acme.localhost:9000"]
        assert agent in access.inbox_members(Inbox.objects.get(name=services.DEMO_INBOX))
    connection.set_schema_to_public()


# --- the REST API ---------------------------------------------------------------------------------


def test_an_integrator_creates_a_webchat_through_the_api(acme):
    with tenant_context(acme):
        inbox = access.inbox_create(by=_user("admin@acme.test"), name="Site chat inbox")
    connection.set_schema_to_public()
    client = support.signed_in(acme, "integrator@acme.test")
    created = client.post(
        "/api/v1/channels/",
        {
            "name": "Site chat",
            "kind": "webchat",
            "allowed_origins": [ORIGIN, "https://b.example:8443/"],
            "inbox_id": inbox.pk,
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["kind"] == "webchat" and body["inbox"] == {"id": inbox.pk, "name": inbox.name}
    assert body["allowed_origins"] == [ORIGIN, "https://b.example:8443"]
    assert body["webhook_url"] == ""  # nothing posts to a web chat but its widget
    assert body["widget_script"] == (
        '<script src="http://acme.localhost/static/webchat/widget.js" '
        f'data-parley-channel="{body["public_id"]}" async></script>'
    )
    with tenant_context(acme):
        event = AuditEvent.objects.get(action="channel.created", target_id=str(body["id"]))
        assert event.details["allowed_origins"] == body["allowed_origins"]
    connection.set_schema_to_public()
    # The page shows the same snippet; the list API the same fields.
    listed = client.get("/api/v1/channels/").json()["results"]
    mine = next(c for c in listed if c["id"] == body["id"])
    assert mine["widget_script"] == body["widget_script"]
    page = client.get("/connectors/channels/").content.decode()
    assert f"data-parley-channel=&quot;{body['public_id']}&quot;" in page
    # Other kinds carry no web chat fields.
    others = [c for c in listed if c["kind"] != "webchat"]
    assert all(c["allowed_origins"] == [] and c["widget_script"] == "" for c in others)


def test_the_api_changes_a_webchats_allowed_sites_and_framing_follows(acme):
    channel = _channel(acme)
    client = support.signed_in(acme, "integrator@acme.test")
    url = f"/api/v1/channels/{channel.pk}/origins/"
    changed = client.put(
        url, {"allowed_origins": ["https://new.example"]}, content_type="application/json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["allowed_origins"] == ["https://new.example"]
    frame = support.tenant_client("acme").get(f"/webchat/{channel.public_id}/")
    assert "frame-ancestors 'self' https://new.example" in frame["Content-Security-Policy"]
    assert ORIGIN not in frame["Content-Security-Policy"]
    with tenant_context(acme):
        assert AuditEvent.objects.filter(
            action="channel.origins_changed", target_id=str(channel.pk)
        ).exists()
    connection.set_schema_to_public()
    # Not a web chat, no such channel, not allowed, no fresh code.
    with tenant_context(acme):
        other = Channel.objects.exclude(kind="webchat").first() or channel
    connection.set_schema_to_public()
    if other.kind != "webchat":
        wrong = client.put(
            f"/api/v1/channels/{other.pk}/origins/",
            {"allowed_origins": [ORIGIN]},
            content_type="application/json",
        )
        assert wrong.status_code == 400 and "channel" in wrong.json()["errors"]
    missing = client.put(
        "/api/v1/channels/999999999/origins/",
        {"allowed_origins": [ORIGIN]},
        content_type="application/json",
    )
    assert missing.status_code == 404
    agent = support.signed_in(acme, "agent@acme.test")
    assert (
        agent.put(url, {"allowed_origins": [ORIGIN]}, content_type="application/json").status_code
        == 403
    )
    stale = support.signed_in(acme, "integrator@acme.test", step_up=False)
    refused = stale.put(url, {"allowed_origins": [ORIGIN]}, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["code"] == "step_up_required"
    with tenant_context(acme):
        channel.refresh_from_db()
        assert channel.settings["allowed_origins"] == ["https://new.example"]


HOSTILE_ORIGINS = [
    "https://shop.example.com",  # a string, not a list
    ["javascript:alert(1)"],
    ["https://shop.example.com/path"],
    ["https://*.example.com"],
    ["https://user@shop.example.com"],
    ["https://shop.example.com:٨٠"],
    ["https://shop.example.com:99999"],
    ["https://a\x00b.example"],
    ["https://\ud800.example"],
    [10**400],
    [["https://nested.example"]],
    [f"https://s{i}.example" for i in range(21)],
    ["https://" + "a" * 400 + ".example"],
    [],
]


@pytest.mark.parametrize("origins", HOSTILE_ORIGINS, ids=range(len(HOSTILE_ORIGINS)))
def test_hostile_allowed_sites_through_the_api_are_refused_and_nothing_stored(acme, origins):
    channel = _channel(acme)
    client = support.signed_in(acme, "integrator@acme.test")
    with tenant_context(acme):
        inbox = access.inbox_create(by=_user("admin@acme.test"), name=f"H {uuid.uuid4().hex[:6]}")
        channels_before = Channel.objects.count()
    connection.set_schema_to_public()
    raw = json.dumps(
        {
            "name": "Hostile chat",
            "kind": "webchat",
            "allowed_origins": origins,
            "inbox_id": inbox.pk,
        }
    )
    created = client.post("/api/v1/channels/", raw, content_type="application/json")
    assert created.status_code == 400, created.content
    assert created.json()["code"] in ("invalid", "parse_error")
    changed = client.put(
        f"/api/v1/channels/{channel.pk}/origins/",
        json.dumps({"allowed_origins": origins}),
        content_type="application/json",
    )
    assert changed.status_code == 400, changed.content
    with tenant_context(acme):
        assert Channel.objects.count() == channels_before
        channel.refresh_from_db()
        assert channel.settings["allowed_origins"] == [ORIGIN]
        assert not AuditEvent.objects.filter(
            action="channel.origins_changed", target_id=str(channel.pk)
        ).exists()
