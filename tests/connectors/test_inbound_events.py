"""The generic webhook and the inbound event store, over every Meta fixture and the
API channel: verify, store encrypted once, process in the worker's task, relay, purge."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from connectors import channels, delivery, health, inbound
from connectors.adapters import registry
from connectors.adapters.base import DeliveryError
from connectors.api_channel.adapter import ApiChannelAdapter
from connectors.models import Channel, ChannelCredential, InboundEvent
from connectors.services import credential_set
from connectors.tasks import (
    inbound_event_process,
    inbound_events_purge,
    inbound_events_relay,
    message_deliver,
)
from conversations import access
from conversations.models import Inbox, Message
from tests import support
from tests.connectors.meta.support import APP_SECRET, FIXTURES, VERIFY_TOKEN, signed
from tests.connectors.test_api_channel import _channel, _conversation_with_reply, _inbound
from tests.connectors.test_api_channel import _post as api_post
from tests.platform.test_outage import redis_down

WEBHOOK_FIXTURES = sorted(p.name for p in FIXTURES.glob("*webhook*.json"))
KIND_OF = {"wa": "whatsapp", "messenger": "messenger", "instagram": "instagram"}
ROUTING = {"whatsapp": "phone_number_id", "messenger": "page_id", "instagram": "account_id"}


def _meta_channel(tenant, kind: str, account: str = "") -> Channel:
    with tenant_context(tenant):
        public_id = uuid.uuid4().hex[:20]
        channel = Channel.objects.create(
            name=f"{kind} {public_id[:6]}",
            kind=kind,
            public_id=public_id,
            settings={ROUTING[kind]: account} if account else {},
        )
        for role, secret in (("app_secret", APP_SECRET), ("verify_token", VERIFY_TOKEN)):
            credential = credential_set(
                name=f"{public_id}-{role}".replace("_", "-"),
                kind="webhook_secret",
                connector=kind,
                secret=secret,
            )
            ChannelCredential.objects.create(channel=channel, role=role, credential=credential)
        admin = support_user(tenant, "admin")
        inbox = access.inbox_create(by=admin, name=f"Inbox {public_id[:8]}")
        type(inbox).objects.filter(pk=inbox.pk).update(channel=channel)
        channel = channels.channel_get(channel_id=channel.pk)
    connection.set_schema_to_public()
    return channel


def support_user(tenant, role):

    return get_user_model().objects.get(email=f"{role}@{tenant.slug}.test")


def _post(channel, raw: bytes, headers: dict[str, str], client=None):
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return (client or support.tenant_client("acme")).post(
        f"/webhooks/{channel.kind}/{channel.public_id}/",
        data=raw,
        content_type="application/json",
        **extra,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("name", WEBHOOK_FIXTURES)
def test_every_meta_fixture_delivered_three_times_stores_each_message_once(acme, name):
    kind = KIND_OF[name.split("_")[0]]
    raw = (FIXTURES / name).read_bytes()
    adapter = registry.get(kind)
    try:
        parsed = adapter.parse(raw)
    except Exception as exc:  # the adapter refuses it: so does the webhook, storing nothing
        channel = _meta_channel(acme, kind)
        response = _post(channel, raw, signed(raw))
        assert response.status_code == 400 and response.json()["code"] == exc.code
        with tenant_context(acme):
            assert not InboundEvent.objects.filter(channel_id=channel.pk).exists()
        return
    account = parsed.routing_keys[0] if parsed.routing_keys else ""
    channel = _meta_channel(acme, kind, account)
    answers = [_post(channel, raw, signed(raw)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200], answers[0].content
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    with tenant_context(acme):
        events = list(InboundEvent.objects.filter(channel_id=channel.pk))
        assert len(events) == 1 and events[0].status == "pending"
        assert raw[:40] not in bytes(events[0].raw_ct)  # encrypted, bound to the row
        assert inbound.raw_of(events[0]) == raw
        for _ in range(2):  # a redelivered task changes nothing
            inbound_event_process.apply(args=(events[0].pk,)).get()
        events[0].refresh_from_db()
        assert events[0].status == "processed" and events[0].attempts == 1
        stored = Message.objects.filter(inbox_id_denorm=channel.inbox.pk, direction="in")
        ours = [m for m in parsed.messages if m.routing_key == account]
        # Once per external id (one fixture repeats Meta's placeholder id "wamid.ID").
        assert sorted(stored.values_list("external_id", flat=True)) == sorted(
            {m.external_id[:128] for m in ours}
        )
        assert Channel.objects.get(pk=channel.pk).last_event_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [{}, {"X-Hub-Signature-256": "sha256=" + "0" * 64}, "other"])
def test_a_bad_or_missing_meta_signature_is_401_and_stores_nothing(acme, headers):
    channel = _meta_channel(acme, "whatsapp")
    raw = (FIXTURES / "wa_webhook_text.json").read_bytes()
    if headers == "other":
        headers = signed(raw, secret="not-the-app-secret")
    response = _post(channel, raw, headers)
    assert response.status_code == 401 and response.json()["code"].startswith("signature_")
    with tenant_context(acme):
        assert not InboundEvent.objects.filter(channel_id=channel.pk).exists()
        assert not Message.objects.filter(inbox_id_denorm=channel.inbox.pk).exists()


@pytest.mark.django_db
def test_the_meta_handshake_echoes_the_challenge_only_for_the_verify_token(acme):
    channel = _meta_channel(acme, "whatsapp")
    client = support.tenant_client("acme")
    url = f"/webhooks/whatsapp/{channel.public_id}/"
    good = client.get(
        url,
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"},
    )
    assert good.status_code == 200 and good.content == b"1158201444"
    assert good["Content-Type"].startswith("text/plain")
    with tenant_context(acme):
        # The handshake decrypts the verify token only, never the app secret or the
        # sending token (each decryption is on the trail).
        verify = channel.credential_links.get(role="verify_token").credential_id
        used = AuditEvent.objects.filter(action="credential.used")
        assert {e.target_id for e in used} == {str(verify)}
    bad = client.get(
        url, {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"}
    )
    assert bad.status_code == 403 and b"1158201444" not in bad.content
    # The same public id under another kind is no channel.
    other = client.get(f"/webhooks/messenger/{channel.public_id}/")
    assert other.status_code in (404, 405)


@pytest.mark.django_db
def test_the_relay_enqueues_pending_events_and_the_purge_keeps_recent_ones(acme):
    channel = _meta_channel(acme, "whatsapp", "106540352242922")
    raw = (FIXTURES / "wa_webhook_text.json").read_bytes()
    assert _post(channel, raw, signed(raw)).status_code == 200
    with tenant_context(acme):
        event = InboundEvent.objects.get(channel_id=channel.pk)
        assert inbound.inbound_events_pending() == []  # too fresh: its own enqueue is under way
        InboundEvent.objects.filter(pk=event.pk).update(
            received_at=timezone.now() - timedelta(minutes=5)
        )
        assert inbound.inbound_events_pending() == [event.pk]
        relayed = inbound_events_relay.apply().get()
        assert relayed["pending"] == 1
        inbound_event_process.apply(args=(event.pk,)).get()
        assert inbound.inbound_events_pending() == []
        assert inbound_events_purge.apply().get()["purged"] == 0  # processed just now
        InboundEvent.objects.filter(pk=event.pk).update(
            processed_at=timezone.now() - timedelta(days=8)
        )
        assert inbound_events_purge.apply().get()["purged"] == 1
        # The message outlives its raw event.
        assert Message.objects.filter(inbox_id_denorm=channel.inbox.pk).count() == 1


class _Refusing:
    """A throw-away kind whose sends fail the way a DeliveryError says."""

    def __init__(self, error: DeliveryError, *, templates: bool = False):

        class Adapter(ApiChannelAdapter):
            kind = "refusing_test"
            label = "Refusing"
            TEMPLATES = templates

            def send(self, message, settings, secrets, http):
                raise error

        self.adapter = Adapter()

    def __enter__(self):
        registry.register(self.adapter)
        return self.adapter

    def __exit__(self, *exc):
        registry.unregister(self.adapter.kind)


def _reply_on(acme, channel_kind_adapter):
    """An API channel switched to the throw-away kind, with a queued reply: its id."""

    channel, secret = _channel(acme)
    reply_id, _ = _conversation_with_reply(acme, channel, secret)
    with tenant_context(acme):
        Channel.objects.filter(pk=channel.pk).update(kind=channel_kind_adapter.kind)
    connection.set_schema_to_public()
    return channel, reply_id


@pytest.mark.django_db
def test_refused_credentials_mark_the_channel_unhealthy_and_tell_the_admins(
    acme, django_capture_on_commit_callbacks
):

    error = DeliveryError("HTTP 401", permanent=True, code="auth_failed", auth_failed=True)
    with _Refusing(error) as adapter:
        channel, reply_id = _reply_on(acme, adapter)
        with tenant_context(acme), django_capture_on_commit_callbacks(execute=True):
            assert message_deliver.apply(args=(reply_id,)).get()["delivery"] == "failed"
        with tenant_context(acme):
            channel = Channel.objects.get(pk=channel.pk)
            assert channel.health == "auth_failed" and channel.last_error_code == "auth_failed"
            assert channel.last_error_at is not None
            assert (
                AuditEvent.objects.filter(
                    action="channel.auth_failed", target_id=str(channel.pk)
                ).count()
                == 1
            )
            reply = Message.objects.get(pk=reply_id)
            assert reply.delivery == "failed" and reply.delivery_attempts == 1
    told = [m for m in mail.outbox if channel.name in m.subject]
    assert told and "Credentials page" in told[0].body  # where the token is replaced


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("templates", "told"),
    [
        # WhatsApp: a template may write first, and the inbox offers one on this text.
        (True, "WhatsApp only allows a template message now."),
        # Messenger and Instagram: nothing may write first, so no template is offered.
        (False, "Refusing delivers no reply until they write again."),
    ],
    ids=["with-templates", "without-templates"],
)
def test_outside_the_window_the_agent_is_told_what_may_go(acme, templates, told):
    error = DeliveryError("outside", permanent=True, code="outside_window", outside_window=True)
    with _Refusing(error, templates=templates) as adapter:
        _, reply_id = _reply_on(acme, adapter)
        with tenant_context(acme):
            message_deliver.apply(args=(reply_id,)).get()
            reply = Message.objects.get(pk=reply_id)
    assert reply.delivery == "failed"
    assert reply.delivery_error == "This customer last wrote more than 24 hours ago: " + told
    assert reply.awaits_template is templates


@pytest.mark.django_db
def test_a_transient_error_records_the_next_retry_and_honours_retry_after(acme):

    error = DeliveryError("HTTP 429", code="rate_limited", retry_after=900)
    with _Refusing(error) as adapter:
        _, reply_id = _reply_on(acme, adapter)
        with tenant_context(acme):
            with pytest.raises(delivery.TransientDeliveryError) as caught:
                delivery.delivery_attempt(message_id=reply_id)
            reply = Message.objects.get(pk=reply_id)
    assert caught.value.countdown >= 900
    assert reply.delivery == "queued" and reply.delivery_attempts == 1
    assert reply.delivery_error == "HTTP 429"
    assert reply.delivery_next_at > timezone.now() + timedelta(seconds=800)


@pytest.mark.django_db
def test_the_channel_list_shows_health_last_event_and_last_error(acme):
    channel = _meta_channel(acme, "whatsapp", "106540352242922")
    raw = (FIXTURES / "wa_webhook_text.json").read_bytes()
    assert _post(channel, raw, signed(raw)).status_code == 200
    with tenant_context(acme):
        health.channel_health_failed(channel_id=channel.pk, code="auth_failed", auth_failed=True)
    connection.set_schema_to_public()
    page = support.signed_in(acme, "integrator@acme.test").get("/connectors/channels/")
    assert page.status_code == 200
    row = page.content.decode().split(channel.name, 1)[1].split("</tr>", 1)[0]
    assert "WhatsApp" in row and "Credentials refused" in row and "auth_failed" in row
    assert "never" not in row  # the event was seen


@pytest.mark.django_db
def test_an_integrator_creates_a_whatsapp_channel_with_vaulted_secrets(acme):

    given = {"app_secret": APP_SECRET, "access_token": "EAAG-token-1", "verify_token": VERIFY_TOKEN}
    with tenant_context(acme):
        inbox = access.inbox_create(by=support_user(acme, "admin"), name="WA inbox")
        for bad in (
            {"phone_number_id": "²"},
            {"phone_number_id": "1065"[:0]},
            {"phone_number_id": "106", "graph_base_url": "https://user:pw@graph.example"},
            {"phone_number_id": "106", "api_version": "latest"},
            {"phone_number_id": "106", "unknown": "x"},
        ):
            with pytest.raises(ValidationError):
                channels.channel_create(
                    by=support_user(acme, "integrator"),
                    name="WA",
                    kind="whatsapp",
                    settings=bad,
                    secrets_given=given,
                    inbox_id=inbox.pk,
                )
        with pytest.raises(ValidationError):
            channels.channel_create(
                by=support_user(acme, "integrator"),
                name="WA",
                kind="whatsapp",
                settings={"phone_number_id": "106540352242922"},
                secrets_given={"app_secret": APP_SECRET},
                inbox_id=inbox.pk,
            )
        with pytest.raises(PermissionDenied):
            channels.channel_create(
                by=support_user(acme, "agent"),
                name="WA",
                kind="whatsapp",
                settings={"phone_number_id": "106540352242922"},
                secrets_given=given,
                inbox_id=inbox.pk,
            )
        assert not Channel.objects.filter(name="WA").exists()
        channel, shown = channels.channel_create(
            by=support_user(acme, "integrator"),
            name="WA",
            kind="whatsapp",
            settings={"phone_number_id": "106540352242922"},
            secrets_given=given,
            inbox_id=inbox.pk,
        )
        assert shown == "" and channel.settings == {"phone_number_id": "106540352242922"}
        roles = {link.role: link.credential for link in channel.credential_links.all()}
        assert set(roles) == {"app_secret", "access_token", "verify_token"}
        for role, credential in roles.items():
            assert given[role].encode() not in bytes(credential.secret_ct)
        trail = json.dumps([e.details for e in AuditEvent.objects.all()[:500]])
        assert all(value not in trail for value in given.values())
    connection.set_schema_to_public()
    raw = (FIXTURES / "wa_webhook_text.json").read_bytes()
    answer = _post(channel, raw, signed(raw))
    assert answer.status_code == 200 and answer.json()["duplicate"] is False


@pytest.mark.django_db
def test_an_account_error_from_whatsapp_becomes_the_channels_last_error(acme):
    raw = (FIXTURES / "wa_webhook_errors_130429.json").read_bytes()
    parsed = registry.get("whatsapp").parse(raw)
    channel = _meta_channel(acme, "whatsapp", parsed.routing_keys[0])
    assert _post(channel, raw, signed(raw)).status_code == 200
    with tenant_context(acme):
        event = InboundEvent.objects.get(channel_id=channel.pk)
        inbound_event_process.apply(args=(event.pk,)).get()
        channel = Channel.objects.get(pk=channel.pk)
    assert channel.health == "failing" and channel.last_error_code == "vendor_130429"


@pytest.mark.django_db
def test_any_signed_bytes_on_a_meta_webhook_get_200_or_a_json_4xx(acme):
    """Hostile input through the generic webhook: never a 500; a refusal stores nothing."""

    channel = _meta_channel(acme, "whatsapp")
    fixture = json.loads((FIXTURES / "wa_webhook_text.json").read_text())
    texts = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "²"]))
    mutated = st.builds(
        lambda value: json.dumps(
            {**fixture, "entry": [{**fixture["entry"][0], "id": value}]}, allow_nan=True
        ).encode(),
        st.one_of(texts, st.integers(min_value=-(2**70), max_value=2**70), st.floats()),
    )
    client = Client(HTTP_HOST=support.TENANTS["acme"], raise_request_exception=False)

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(raw=st.one_of(st.binary(max_size=400), mutated))
    def probe(raw):
        with tenant_context(acme):
            before = InboundEvent.objects.filter(channel_id=channel.pk).count()
        connection.set_schema_to_public()
        response = client.post(
            f"/webhooks/whatsapp/{channel.public_id}/",
            data=raw,
            content_type="application/json",
            **{"HTTP_X_HUB_SIGNATURE_256": signed(raw)["X-Hub-Signature-256"]},
        )
        assert response.status_code < 500, response.content[:300]
        assert response["Content-Type"] == "application/json"
        if response.status_code >= 400:
            assert response.json()["code"]
            with tenant_context(acme):
                assert InboundEvent.objects.filter(channel_id=channel.pk).count() == before
            connection.set_schema_to_public()

    with override_settings(PARLEY_RATE_CHANNEL_WEBHOOK="1000000/min"):
        probe()


@pytest.mark.django_db
def test_an_api_event_whose_processing_meets_a_redis_outage_is_kept_for_the_worker(acme):
    """Round-robin asks Redis who is online: with Redis down the API channel cannot
    answer with the message, so it keeps the event pending and says so; the worker
    stores the message once Redis is back."""

    channel, secret = _channel(acme)
    with tenant_context(acme):
        inbox = Inbox.objects.get(pk=channel.inbox.pk)
        Inbox.objects.filter(pk=inbox.pk).update(assignment="round_robin")
        access.inbox_member_add(
            by=support_user(acme, "admin"), inbox=inbox, user=support_user(acme, "agent")
        )
    connection.set_schema_to_public()
    with redis_down():
        response = api_post("acme", channel, _inbound("rr-1"), secret=secret)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["ok"] is True and "message_id" not in answer and answer["duplicate"] is False
    with tenant_context(acme):
        event = InboundEvent.objects.get(pk=answer["event_id"])
        assert event.status == "pending"
        assert not Message.objects.filter(inbox_id_denorm=inbox.pk).exists()
        assert inbound_event_process.apply(args=(event.pk,)).get()["outcome"] == "processed"
        assert Message.objects.filter(inbox_id_denorm=inbox.pk, external_id="rr-1").count() == 1
