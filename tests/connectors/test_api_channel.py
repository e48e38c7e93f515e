"""The API channel end to end: signed webhooks in, signed replies out to a real
local HTTP receiver, status callbacks, retries, and the channel page and API."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import tenant_context
from guardian.models import UserObjectPermission

from audit.models import AuditEvent
from connectors import channels, tasks
from connectors import services as connector_services
from connectors.models import Channel, Credential
from connectors.tasks import message_deliver, message_drain
from conversations import access, services
from conversations.models import Contact, ContactIdentity, Conversation, Inbox, Message
from conversations.services import body_of, contact_pii, reply_send
from parley import outbound
from tenants.models import Tenant
from tests import support

BODY = "Hello, my order #MARK-4411 never arrived"
REPLY = "Sorry to hear that: REPLY-MARK-9902"


class Receiver:
    """A local HTTP server standing in for an integration's reply endpoint."""

    def __init__(self, statuses=(200,)):
        self.requests: list[dict] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"headers": dict(self.headers), "raw": raw})
                index = min(len(receiver.requests), len(receiver.statuses)) - 1
                self.send_response(receiver.statuses[index])
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/parley/replies"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _user(email):
    return get_user_model().objects.get(email=email)


def _channel(tenant, url="https://integration.example/replies", *, name=None, by="admin"):
    """A channel bound to a new inbox: (channel, secret)."""
    with tenant_context(tenant):
        channel, secret = channels.channel_create(
            by=_user(f"{by}@{tenant.slug}.test"),
            name=name or f"Chan {uuid.uuid4().hex[:6]}",
            outbound_url=url,
        )
    connection.set_schema_to_public()
    return channel, secret


def _post(slug, channel, payload=None, *, secret, raw=None, t=None, header=None, **extra):
    raw = raw if raw is not None else json.dumps(payload).encode()
    if header is None:
        header = channels.signature_header(secret=secret, body=raw, timestamp=t)
    return support.tenant_client(slug).post(
        f"/webhooks/api/{channel.public_id}/",
        data=raw,
        content_type=extra.pop("content_type", "application/json"),
        HTTP_X_PARLEY_SIGNATURE=header,
        **extra,
    )


def _inbound(ext_id="ext-1", contact="cust-42", body=BODY, **more):
    return {
        "type": "message",
        "id": ext_id,
        "contact": {"id": contact, "name": "Ada Lovelace"},
        "body": body,
        **more,
    }


# --- signatures -------------------------------------------------------------------------------------


def test_it_verifies_only_the_exact_signed_bytes():
    body = b'{"type":"message"}'
    header = channels.signature_header(secret="s3cret", body=body, timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert channels.signature_verify(secret="s3cret", body=body, header=header, now=1_700_000_100)
    for secret, raw, now, code in [
        ("other", body, 1_700_000_100, "signature_invalid"),
        ("s3cret", body + b" ", 1_700_000_100, "signature_invalid"),
        ("s3cret", body, 1_700_000_301, "timestamp_out_of_window"),
        ("s3cret", body, 1_699_999_699, "timestamp_out_of_window"),
    ]:
        with pytest.raises(channels.SignatureError) as caught:
            channels.signature_verify(secret=secret, body=raw, header=header, now=now)
        assert caught.value.code == code
    # A sender rotating its secret may send two signatures: one match is enough.
    both = header + ",v1=" + "0" * 64
    assert channels.signature_verify(secret="s3cret", body=body, header=both, now=1_700_000_000)


# --- inbound ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_stores_a_signed_inbound_message_encrypted(acme):
    channel, secret = _channel(acme)
    response = _post("acme", channel, _inbound(), secret=secret)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["ok"] is True and answer["duplicate"] is False
    with tenant_context(acme):
        message = Message.objects.get(pk=answer["message_id"])
        assert message.direction == "in" and message.external_id == "ext-1"
        assert message.inbox_id_denorm == channel.inbox.pk
        assert BODY.encode() not in bytes(message.body_ct)
        assert body_of(message) == BODY
        identity = ContactIdentity.objects.get(channel=channel, external_id="cust-42")
        assert message.conversation.contact_id == identity.contact_id
        assert message.conversation.inbox_id == channel.inbox.pk
        contact = Contact.objects.get(pk=identity.contact_id)
        assert b"Ada" not in bytes(contact.name_ct)
        assert contact_pii(contact)["name"] == "Ada Lovelace"


@pytest.mark.django_db
def test_it_stores_a_repeated_event_once(acme):
    channel, secret = _channel(acme)
    first = _post("acme", channel, _inbound("dup-1"), secret=secret)
    again = _post("acme", channel, _inbound("dup-1", body="changed on retry"), secret=secret)
    assert first.status_code == again.status_code == 200
    assert again.json() == {"ok": True, "message_id": first.json()["message_id"], "duplicate": True}
    with tenant_context(acme):
        assert Message.objects.filter(inbox_id_denorm=channel.inbox.pk).count() == 1
        assert body_of(Message.objects.get(pk=first.json()["message_id"])) == BODY
        assert Conversation.objects.filter(inbox=channel.inbox).count() == 1


def _refusals(acme, channel):
    with tenant_context(acme):
        return list(
            AuditEvent.objects.filter(
                action="channel.webhook_refused", target_id=str(channel.pk)
            ).values("outcome", "details", "actor_kind")
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no signature", 401, "signature_missing"),
        ("wrong secret", 401, "signature_invalid"),
        ("garbled header", 401, "signature_invalid"),
        ("tampered body", 401, "signature_invalid"),
        ("stale timestamp", 401, "timestamp_out_of_window"),
        ("future timestamp", 401, "timestamp_out_of_window"),
        ("oversized", 413, "payload_too_large"),
        ("not json", 400, "invalid_json"),
        ("json list", 400, "invalid_json"),
        ("form encoded", 415, "unsupported_media_type"),
        ("unknown type", 400, "unknown_type"),
        ("no contact", 400, "invalid"),
        ("no external id", 400, "invalid"),
        ("http attachment", 400, "invalid"),
    ],
)
def test_it_refuses_bad_events_with_json_and_audits_them(acme, case, status, code):
    channel, secret = _channel(acme)
    raw = json.dumps(_inbound(body=BODY)).encode()
    kwargs: dict = {"secret": secret, "raw": raw}
    if case == "no signature":
        kwargs["header"] = ""
    elif case == "wrong secret":
        kwargs["secret"] = "not-the-secret"
    elif case == "garbled header":
        kwargs["header"] = "v1=abc,t=soon"
    elif case == "tampered body":
        kwargs["header"] = channels.signature_header(secret=secret, body=raw)
        kwargs["raw"] = raw.replace(b"Ada", b"Eve")
    elif case == "stale timestamp":
        kwargs["t"] = int(time.time()) - 301
    elif case == "future timestamp":
        kwargs["t"] = int(time.time()) + 400
    elif case == "oversized":
        kwargs["raw"] = json.dumps(_inbound(body="x" * (256 * 1024))).encode()
    elif case == "not json":
        kwargs["raw"] = b'{"type": "message", '
    elif case == "json list":
        kwargs["raw"] = b"[1, 2]"
    elif case == "form encoded":
        kwargs["content_type"] = "application/x-www-form-urlencoded"
    elif case == "unknown type":
        kwargs["raw"] = json.dumps({"type": "typing"}).encode()
    elif case == "no contact":
        kwargs["raw"] = json.dumps({"type": "message", "id": "m1", "body": BODY}).encode()
    elif case == "no external id":
        kwargs["raw"] = json.dumps(_inbound(ext_id="")).encode()
    elif case == "http attachment":
        attachment = {"url": "http://plain.example/a.png", "type": "image/png", "size": 1}
        kwargs["raw"] = json.dumps(_inbound(attachments=[attachment])).encode()
    response = _post("acme", channel, **kwargs)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code
    with tenant_context(acme):
        assert not Message.objects.filter(inbox_id_denorm=channel.inbox.pk).exists()
    refusals = _refusals(acme, channel)
    assert len(refusals) == 1
    assert refusals[0]["outcome"] == "denied" and refusals[0]["details"]["reason"] == code
    assert refusals[0]["actor_kind"] == "anonymous"
    assert "MARK-4411" not in json.dumps(refusals)


@pytest.mark.django_db
def test_it_answers_unknown_and_disabled_channels_with_404(acme):
    channel, secret = _channel(acme)
    client = support.tenant_client("acme")
    unknown = client.post(
        "/webhooks/api/no-such-channel-id/", data=b"{}", content_type="application/json"
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_channel"
    with tenant_context(acme):
        Channel.objects.filter(pk=channel.pk).update(enabled=False)
    disabled = _post("acme", channel, _inbound(), secret=secret)
    assert disabled.status_code == 404 and disabled.json()["code"] == "unknown_channel"
    fetched = client.get(f"/webhooks/api/{channel.public_id}/")
    assert fetched.status_code in (404, 405) and "code" in fetched.json()


@pytest.mark.django_db
def test_another_tenants_host_cannot_post_to_the_channel(acme, globex):
    channel, secret = _channel(acme)
    response = _post("globex", channel, _inbound(), secret=secret)
    assert response.status_code == 404 and response.json()["code"] == "unknown_channel"
    with tenant_context(acme):
        assert not Message.objects.filter(inbox_id_denorm=channel.inbox.pk).exists()


@pytest.mark.django_db
def test_it_rate_limits_each_channel(acme):
    channel, secret = _channel(acme)
    other, other_secret = _channel(acme)
    with override_settings(PARLEY_RATE_CHANNEL_WEBHOOK="2/min"):
        for i in range(2):
            assert _post("acme", channel, _inbound(f"r{i}"), secret=secret).status_code == 200
        refused = _post("acme", channel, _inbound("r3"), secret=secret)
        assert refused.status_code == 429 and refused.json()["code"] == "throttled"
        assert int(refused["Retry-After"]) >= 1
        # Another channel has its own budget.
        assert _post("acme", other, _inbound("r3"), secret=other_secret).status_code == 200


# --- outbound ------------------------------------------------------------------------------------


def _conversation_with_reply(tenant, channel, secret, *, body=REPLY):
    """A contact writes in over the channel; a member agent replies. The reply's id."""
    response = _post(tenant.slug, channel, _inbound(f"in-{uuid.uuid4().hex[:8]}"), secret=secret)
    assert response.status_code == 200, response.content
    with tenant_context(tenant):
        inbound = Message.objects.get(pk=response.json()["message_id"])
        agent = _user(f"agent@{tenant.slug}.test")
        inbox = Inbox.objects.get(pk=channel.inbox.pk)
        access.inbox_member_add(by=_user(f"admin@{tenant.slug}.test"), inbox=inbox, user=agent)
        reply = reply_send(by=agent, conversation_id=inbound.conversation_id, body=body)
        assert reply.delivery == "queued"
    connection.set_schema_to_public()
    return reply.pk, inbound.conversation_id


@pytest.mark.django_db
def test_a_reply_is_delivered_signed_to_the_outbound_url(
    acme, receiver, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level("DEBUG")
    channel, secret = _channel(acme, receiver.url)
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        reply_id, conversation_id = _conversation_with_reply(acme, channel, secret)
    # _enqueue_delivery: message_deliver.delay(reply id), on commit.
    assert [c for c in enqueued if "_enqueue_delivery" in c.__qualname__]
    with tenant_context(acme):
        result = message_deliver.apply(args=(reply_id,)).get()
        reply = Message.objects.get(pk=reply_id)
    assert result["delivery"] == "sent"
    assert reply.delivery == "sent" and reply.delivery_attempts == 1
    assert len(receiver.requests) == 1
    sent = receiver.requests[0]
    assert sent["headers"]["Content-Type"] == "application/json"
    channels.signature_verify(
        secret=secret, body=sent["raw"], header=sent["headers"]["X-Parley-Signature"]
    )
    payload = json.loads(sent["raw"])
    assert payload == {
        "type": "message",
        "id": reply_id,
        "conversation_id": conversation_id,
        "contact_id": "cust-42",
        "body": REPLY,
        "attachments": [],
        "created_at": reply.created_at.isoformat(),
    }
    # Running the task again (a redelivery) sends nothing twice.
    with tenant_context(acme):
        assert message_deliver.apply(args=(reply_id,)).get()["delivery"] == "skipped"
    assert len(receiver.requests) == 1
    assert secret not in caplog.text and REPLY not in caplog.text


@pytest.mark.django_db
def test_a_failing_receiver_is_retried_then_the_reply_fails(acme, caplog):
    caplog.set_level("DEBUG")
    failing = Receiver(statuses=(500,))
    try:
        channel, secret = _channel(acme, failing.url)
        reply_id, _ = _conversation_with_reply(acme, channel, secret)
        with tenant_context(acme):
            # Eager: Celery runs each retry at once instead of after its countdown.
            message_deliver.apply(args=(reply_id,))
            reply = Message.objects.get(pk=reply_id)
            events = list(
                AuditEvent.objects.filter(action="message.delivery_failed", target_id=str(reply_id))
            )
    finally:
        failing.close()
    assert len(failing.requests) == channels.MAX_ATTEMPTS
    attempts = [r["headers"]["X-Parley-Attempt"] for r in failing.requests]
    assert attempts == [str(i) for i in range(1, channels.MAX_ATTEMPTS + 1)]
    assert reply.delivery == "failed" and reply.delivery_attempts == channels.MAX_ATTEMPTS
    assert reply.delivery_error.startswith("HTTP 500") and REPLY not in reply.delivery_error
    assert len(events) == 1 and events[0].outcome == "failed"
    assert events[0].details["attempts"] == channels.MAX_ATTEMPTS
    assert REPLY not in json.dumps(events[0].details)
    assert secret not in caplog.text and REPLY not in caplog.text


@pytest.mark.django_db
def test_a_permanent_refusal_is_not_retried(acme):
    refusing = Receiver(statuses=(400,))
    try:
        channel, secret = _channel(acme, refusing.url)
        reply_id, _ = _conversation_with_reply(acme, channel, secret)
        with tenant_context(acme):
            message_deliver.apply(args=(reply_id,))
            reply = Message.objects.get(pk=reply_id)
    finally:
        refusing.close()
    assert len(refusing.requests) == 1
    assert reply.delivery == "failed" and reply.delivery_attempts == 1


@pytest.mark.django_db
def test_status_callbacks_move_delivery_forward_only(acme, globex, receiver):
    channel, secret = _channel(acme, receiver.url)
    reply_id, _ = _conversation_with_reply(acme, channel, secret)
    with tenant_context(acme):
        message_deliver.apply(args=(reply_id,))

    def status(value, message_id=reply_id, **more):
        payload = {"type": "status", "message_id": message_id, "status": value, **more}
        return _post("acme", channel, payload, secret=secret)

    delivered = status("delivered")
    assert delivered.status_code == 200, delivered.content
    assert delivered.json() == {
        "ok": True,
        "message_id": reply_id,
        "duplicate": False,
        "delivery": "delivered",
    }
    assert status("read").json()["delivery"] == "read"
    late = status("delivered")
    assert late.json()["delivery"] == "read" and late.json()["duplicate"] is True
    assert status("sent").status_code == 400
    # Messages of other channels, inbound messages and unknown ids are not this channel's.
    other, other_secret = _channel(acme, receiver.url)
    other_reply, _ = _conversation_with_reply(acme, other, other_secret)
    with tenant_context(acme):
        inbound_id = (
            Message.objects.filter(inbox_id_denorm=channel.inbox.pk, direction="in")
            .values_list("pk", flat=True)
            .first()
        )
    for message_id in (other_reply, inbound_id, 10**12):
        response = status("failed", message_id=message_id, error="nope")
        assert response.status_code == 404 and response.json()["code"] == "unknown_message"
    failed = status("failed", error="recipient blocked us")
    assert failed.json()["delivery"] == "failed"
    with tenant_context(acme):
        reply = Message.objects.get(pk=reply_id)
        assert reply.delivery_error == "recipient blocked us"
        assert Message.objects.get(pk=other_reply).delivery == "queued"


# --- the channel page and API ---------------------------------------------------------------------


@pytest.mark.django_db
def test_an_integrator_creates_a_channel_and_sees_the_secret_once(acme, caplog):
    caplog.set_level("DEBUG")
    with tenant_context(acme):
        inbox = access.inbox_create(by=_user("admin@acme.test"), name="Integration inbox")
    connection.set_schema_to_public()
    client = support.signed_in(acme, "integrator@acme.test")
    created = client.post(
        "/api/v1/channels/",
        {
            "name": "Shop backend",
            "outbound_url": "https://shop.example/hooks",
            "inbox_id": inbox.pk,
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    secret = body["signing_secret"]
    assert len(secret) >= 40 and body["inbox"] == {"id": inbox.pk, "name": "Integration inbox"}
    assert body["webhook_url"] == f"http://acme.localhost/webhooks/api/{body['public_id']}/"
    assert body["secret_last4"] == secret[-4:]
    # Integrators may not create inboxes (nor list them): a new channel binds one
    # of the inboxes without a channel, which the API names.
    free = client.get("/api/v1/channels/inboxes/")
    assert free.status_code == 200
    assert {"id": inbox.pk, "name": "Integration inbox"} not in free.json()  # bound now
    with tenant_context(acme):
        spare = access.inbox_create(by=_user("admin@acme.test"), name="Spare inbox")
    connection.set_schema_to_public()
    assert {"id": spare.pk, "name": "Spare inbox"} in client.get("/api/v1/channels/inboxes/").json()
    assert (
        support.signed_in(acme, "agent@acme.test").get("/api/v1/channels/inboxes/").status_code
        == 403
    )
    no_inbox = client.post(
        "/api/v1/channels/",
        {"name": "Second", "outbound_url": "https://shop.example/hooks"},
        content_type="application/json",
    )
    assert no_inbox.status_code == 400 and "inbox" in no_inbox.json()["errors"]
    taken = client.post(
        "/api/v1/channels/",
        {"name": "Third", "outbound_url": "https://shop.example/h", "inbox_id": inbox.pk},
        content_type="application/json",
    )
    assert taken.status_code == 400 and "inbox" in taken.json()["errors"]
    later = [
        client.get("/api/v1/channels/"),
        client.get("/connectors/channels/"),
        client.get("/api/v1/credentials/"),
        client.get("/connectors/credentials/"),
        client.get("/api/schema/"),
        support.signed_in(acme, "owner@acme.test").get("/audit/"),
    ]
    for response in later:
        assert response.status_code == 200, response.content[:200]
        assert secret.encode() not in response.content
    listed = later[0].json()["results"]
    assert [c["name"] for c in listed] == ["Shop backend"]
    assert "signing_secret" not in listed[0]
    assert body["public_id"].encode() in later[1].content  # the webhook URL is on the page
    with tenant_context(acme):
        channel = Channel.objects.get(pk=body["id"])
        credential = Credential.objects.get(pk=channel.signing_credential_id)
        assert (credential.kind, credential.connector) == ("webhook_secret", "api-channel")
        assert secret.encode() not in bytes(credential.secret_ct)
        assert Inbox.objects.get(pk=inbox.pk).channel_id == channel.pk
        audit = " ".join(str(e.details) for e in AuditEvent.objects.all()[:200])
        assert AuditEvent.objects.filter(action="channel.created", target_id=str(channel.pk))
    assert secret not in audit and secret not in caplog.text
    # The secret works: a signed event is accepted.
    assert _post("acme", channel, _inbound(), secret=secret).status_code == 200


@pytest.mark.django_db
def test_rotation_shows_a_new_secret_once_and_the_old_one_stops_working(acme):
    channel, old = _channel(acme)
    client = support.signed_in(acme, "integrator@acme.test")
    rotated = client.post(f"/api/v1/channels/{channel.pk}/rotate/")
    assert rotated.status_code == 200, rotated.content
    new = rotated.json()["signing_secret"]
    assert new != old
    assert _post("acme", channel, _inbound("a"), secret=old).status_code == 401
    assert _post("acme", channel, _inbound("b"), secret=new).status_code == 200
    page = client.post(f"/connectors/channels/{channel.pk}/rotate/")
    assert page.status_code == 200 and b'id="signing-secret"' in page.content
    assert page["Cache-Control"].startswith("max-age=0") or "no-store" in page["Cache-Control"]
    assert new.encode() not in page.content
    listing = client.get("/connectors/channels/")
    assert b'id="signing-secret"' not in listing.content
    with tenant_context(acme):
        assert (
            AuditEvent.objects.filter(
                action="channel.secret_rotated", target_id=str(channel.pk)
            ).count()
            == 2
        )
    assert client.post("/api/v1/channels/999999999/rotate/").status_code == 404


@pytest.mark.django_db
def test_an_admin_creates_a_channel_with_a_new_inbox_on_the_page(acme):
    client = support.signed_in(acme, "admin@acme.test")
    form = client.get("/connectors/channels/")
    assert form.status_code == 200 and b"New inbox with the channel" in form.content
    created = client.post(
        "/connectors/channels/",
        {"name": "Web shop", "outbound_url": "https://shop.example/replies", "inbox": ""},
    )
    assert created.status_code == 200, created.content
    with tenant_context(acme):
        channel = Channel.objects.get(name="Web shop")
        assert channel.inbox.name == "Web shop"
    assert b'id="signing-secret"' in created.content
    bad = client.post(
        "/connectors/channels/",
        {"name": "Bad", "outbound_url": "ftp://shop.example/replies", "inbox": ""},
    )
    assert bad.status_code == 400 and b"Use an http:// or https:// URL" in bad.content


@pytest.mark.django_db
@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=False)
def test_outbound_urls_to_private_addresses_are_refused(acme):
    client = support.signed_in(acme, "admin@acme.test")
    for url in ("http://127.0.0.1:8000/x", "http://10.0.0.5/x", "http://user:pw@shop.example/x"):
        response = client.post(
            "/api/v1/channels/",
            {"name": "Private", "outbound_url": url},
            content_type="application/json",
        )
        assert response.status_code == 400, url
        assert "outbound_url" in response.json()["errors"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["agent", "marketer", "analyst"])
def test_other_roles_get_403(acme, role):
    channel, _ = _channel(acme)
    client = support.signed_in(acme, f"{role}@acme.test")
    assert client.get("/connectors/channels/").status_code == 403
    assert client.get("/api/v1/channels/").status_code == 403
    created = client.post(
        "/api/v1/channels/",
        {"name": "Nope", "outbound_url": "https://x.example/"},
        content_type="application/json",
    )
    assert created.status_code == 403
    assert client.post(f"/api/v1/channels/{channel.pk}/rotate/").status_code == 403
    assert client.post(f"/connectors/channels/{channel.pk}/rotate/").status_code == 403


@pytest.mark.django_db
def test_changes_need_step_up(acme):
    channel, _ = _channel(acme)
    client = support.signed_in(acme, "integrator@acme.test", step_up=False)
    assert client.get("/api/v1/channels/").status_code == 200
    stale = client.post(f"/api/v1/channels/{channel.pk}/rotate/")
    assert stale.status_code == 403 and stale.json()["code"] == "step_up_required"
    page = client.post(f"/connectors/channels/{channel.pk}/rotate/")
    assert page.status_code == 302 and page["Location"].startswith("/mfa/step-up/")


# --- committed data: concurrency and a real worker -----------------------------------------------------


@contextlib.contextmanager
def _committed_channel(tenant, url):
    """A committed channel (other connections and the worker see it), removed afterwards."""

    channel, secret = _channel(tenant, url, name=f"Committed {uuid.uuid4().hex[:6]}")
    try:
        yield channel, secret
    finally:
        with tenant_context(tenant):
            inbox_id = channel.inbox.pk
            contacts = list(
                ContactIdentity.objects.filter(channel=channel).values_list("contact_id", flat=True)
            )
            Message.objects.filter(inbox_id_denorm=inbox_id).delete()
            Conversation.objects.filter(inbox_id=inbox_id).delete()
            ContactIdentity.objects.filter(channel=channel).delete()
            Contact.objects.filter(pk__in=contacts).delete()
            UserObjectPermission.objects.filter(object_pk=str(inbox_id)).delete()
            Inbox.objects.filter(pk=inbox_id).delete()
            Channel.objects.filter(pk=channel.pk).delete()
            Credential.objects.filter(pk=channel.signing_credential_id).delete()
        connection.set_schema_to_public()


@pytest.mark.slow
def test_concurrent_duplicates_make_one_message(django_db_blocker):
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug="globex")
        with _committed_channel(tenant, "https://integration.example/replies") as (
            channel,
            secret,
        ):
            raw = json.dumps(_inbound("race-1", contact="racer")).encode()
            header = channels.signature_header(secret=secret, body=raw)
            barrier, answers = threading.Barrier(4), []

            def send():

                try:
                    barrier.wait()
                    answers.append(_post("globex", channel, secret=secret, raw=raw, header=header))
                finally:
                    connections.close_all()

            threads = [threading.Thread(target=send) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert [a.status_code for a in answers] == [200] * 4, [a.content for a in answers]
            bodies = [a.json() for a in answers]
            assert len({b["message_id"] for b in bodies}) == 1
            assert sorted(b["duplicate"] for b in bodies) == [False, True, True, True]
            with tenant_context(tenant):
                assert Message.objects.filter(inbox_id_denorm=channel.inbox.pk).count() == 1
                assert ContactIdentity.objects.filter(channel=channel).count() == 1


@pytest.mark.slow
def test_a_real_worker_delivers_a_reply_and_retries_through_its_queue(
    django_db_blocker, monkeypatch
):
    queue = f"channel-test-{uuid.uuid4().hex[:6]}"
    # The reply's commit enqueues its inbox's drain (message_drain.delay), which hands
    # the failed attempt to message_deliver on the queue it came from: this test's.
    for task in (message_drain, message_deliver):
        monkeypatch.setattr(
            task,
            "delay",
            lambda *args, _task=task, **kwargs: _task.apply_async(args, kwargs, queue=queue),
        )
    flaky = Receiver(statuses=(503, 200))
    worker = None
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug="globex")
        try:
            with _committed_channel(tenant, flaky.url) as (channel, secret):
                worker = support.Worker(queue).start()
                reply_id, _ = _conversation_with_reply(tenant, channel, secret)
                deadline = time.monotonic() + 90
                delivery = ""
                while time.monotonic() < deadline:
                    with tenant_context(tenant):
                        reply = Message.objects.get(pk=reply_id)
                    delivery = reply.delivery
                    if delivery != "queued":
                        break
                    time.sleep(0.2)
                assert delivery == "sent", worker.log.read_text()[-3000:]
                assert reply.delivery_attempts == 2
                assert len(flaky.requests) == 2
                for request in flaky.requests:
                    channels.signature_verify(
                        secret=secret,
                        body=request["raw"],
                        header=request["headers"]["X-Parley-Signature"],
                    )
                assert json.loads(flaky.requests[-1]["raw"])["body"] == REPLY
                log = worker.log.read_text()
                assert REPLY not in log and secret not in log
        finally:
            if worker:
                worker.stop()
            flaky.close()
            connection.set_schema_to_public()


@pytest.mark.django_db
def test_a_channels_signing_credential_cannot_be_deleted(acme):
    """Deleting it would orphan the channel: a clear refusal, never a 500."""

    with tenant_context(acme):
        cred = connector_services.credential_set(
            name="del-guard", kind="webhook_secret", connector="api-channel", secret="x" * 32
        )
        Channel.objects.create(name="del-guard", public_id="del-guard-1", signing_credential=cred)
    connection.set_schema_to_public()
    client = support.signed_in(acme, "integrator@acme.test")
    page = client.post(f"/connectors/credentials/{cred.pk}/delete/", follow=True)
    assert page.status_code == 200 and "rotate the channel" in page.content.decode()
    api = client.delete(f"/api/v1/credentials/{cred.pk}/")
    assert api.status_code == 400
    with tenant_context(acme):
        assert Credential.objects.filter(pk=cred.pk).exists()


def test_outbound_calls_do_not_follow_redirects():
    """A 3xx could point past the private-address guard: refused, not followed."""

    hits = []

    class Redirector(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    try:
        with pytest.raises(outbound.OutboundError) as exc:
            outbound.request(
                "POST", f"http://127.0.0.1:{server.server_port}/x", json_body={}, retries=0
            )
        assert exc.value.status == 302 and hits == ["/x"]
    finally:
        server.shutdown()


@pytest.mark.django_db
def test_beat_resends_a_reply_whose_enqueue_was_lost(acme, monkeypatch):
    """The reply is saved but its task never reached the broker: beat hands it over."""

    sent = []
    monkeypatch.setattr(tasks.message_deliver, "delay", lambda message_id: sent.append(message_id))
    with tenant_context(acme):
        admin = get_user_model().objects.get(email="admin@acme.test")
        inbox = access.inbox_create(by=admin, name="Lost enqueue")
        inbox.channel = Channel.objects.create(
            name="lost",
            public_id="lost-enqueue-1",
            signing_credential=Credential.objects.create(
                name="lost-secret",
                kind="webhook_secret",
                connector="api-channel",
                secret_ct=b"x",
                last4="xxxx",
                rotated_at=timezone.now(),
                rotation_due_at=timezone.now() + timedelta(days=90),
            ),
        )
        inbox.save()

        message, _ = services.message_receive(
            inbox=inbox, contact_external_id="c", body="hi", external_id="l-1"
        )
        out = services._message(
            message.conversation,
            body="queued reply",
            direction="out",
            sender="agent",
            delivery="queued",
        )
        assert tasks.deliveries_resume() == 0  # too fresh
        Message.objects.filter(pk=out.pk).update(created_at=timezone.now() - timedelta(minutes=5))
        assert tasks.deliveries_resume() == 1 and sent == [out.pk]


@pytest.mark.django_db
def test_a_paused_channel_refuses_events_until_resumed(acme):

    with tenant_context(acme):
        cred = connector_services.credential_set(
            name="pause-secret", kind="webhook_secret", connector="api-channel", secret="p" * 40
        )
        channel = Channel.objects.create(
            name="pausable", public_id="pausable-1", signing_credential=cred
        )
    connection.set_schema_to_public()
    client = support.signed_in(acme, "integrator@acme.test")
    assert (
        client.post(f"/connectors/channels/{channel.pk}/enabled/", {"enabled": "0"}).status_code
        == 302
    )
    body = json.dumps(
        {"type": "message", "id": "p-1", "contact": {"id": "c"}, "body": "hi"}
    ).encode()
    signed = channels.signature_header(secret="p" * 40, body=body)
    hook = support.tenant_client("acme")
    refused = hook.post(
        "/webhooks/api/pausable-1/",
        body,
        content_type="application/json",
        HTTP_X_PARLEY_SIGNATURE=signed,
    )
    assert refused.status_code == 404
    assert (
        client.post(f"/connectors/channels/{channel.pk}/enabled/", {"enabled": "1"}).status_code
        == 302
    )
    with tenant_context(acme):
        actions = list(
            AuditEvent.objects.filter(target_type="channel", target_id=str(channel.pk)).values_list(
                "action", flat=True
            )
        )
        assert "channel.disabled" in actions and "channel.enabled" in actions
    assert (
        support.signed_in(acme, "agent@acme.test")
        .post(f"/connectors/channels/{channel.pk}/enabled/", {"enabled": "0"})
        .status_code
        == 403
    )
