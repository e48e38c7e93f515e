"""A WhatsApp channel against the local Graph API, a customer writing in over its
signed webhook, an agent replying: shared by the delivery tests and the end-to-end
channel test."""

from __future__ import annotations

import json
import uuid

from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import tenant_context

from connectors import channels
from connectors.models import Channel, InboundEvent
from connectors.tasks import inbound_event_process
from conversations import access
from conversations.models import Inbox, Message
from conversations.services import reply_send
from tests import support
from tests.connectors.meta.support import APP_SECRET, FIXTURES, TOKEN, VERIFY_TOKEN, signed

PHONE_NUMBER_ID = "106540352242922"  # the fixture's metadata.phone_number_id
CUSTOMER = "16505551234"  # the fixture's sender (wa_id)
REPLY = "Yes: blue, green and a very dark red."


def user(tenant, role: str):
    return get_user_model().objects.get(email=f"{role}@{tenant.slug}.test")


def whatsapp_channel(tenant, graph_base_url: str, **more_settings: str) -> Channel:
    """A WhatsApp channel made by the integrator through the service, its Graph API local."""
    with tenant_context(tenant):
        name = f"WA {uuid.uuid4().hex[:6]}"
        channel, _ = channels.channel_create(
            by=user(tenant, "integrator"),
            name=name,
            kind="whatsapp",
            settings={
                "phone_number_id": PHONE_NUMBER_ID,
                "graph_base_url": graph_base_url,
                **more_settings,
            },
            secrets_given={
                "app_secret": APP_SECRET,
                "access_token": TOKEN,
                "verify_token": VERIFY_TOKEN,
            },
            inbox_id=access.inbox_create(by=user(tenant, "admin"), name=name).pk,
        )
        channel = channels.channel_get(channel_id=channel.pk)
    connection.set_schema_to_public()
    return channel


def customer_text(text: str = "Does it come in another color?") -> bytes:
    """The documented WhatsApp text webhook with a fresh message id."""
    document = json.loads((FIXTURES / "wa_webhook_text.json").read_text())
    message = document["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = f"wamid.{uuid.uuid4().hex}"
    message["text"]["body"] = text
    return json.dumps(document).encode()


def post_signed(tenant, channel: Channel, raw: bytes):
    return support.tenant_client(tenant.slug).post(
        f"/webhooks/{channel.kind}/{channel.public_id}/",
        data=raw,
        content_type="application/json",
        **{"HTTP_X_HUB_SIGNATURE_256": signed(raw)["X-Hub-Signature-256"]},
    )


def agent_replies(tenant, channel: Channel, inbound: Message, body: str = REPLY) -> Message:
    """A member agent answers the customer's conversation (the service the inbox calls)."""
    with tenant_context(tenant):
        agent = user(tenant, "agent")
        inbox = Inbox.objects.get(pk=channel.inbox.pk)
        access.inbox_member_add(by=user(tenant, "admin"), inbox=inbox, user=agent)
        reply = reply_send(by=agent, conversation_id=inbound.conversation_id, body=body)
    connection.set_schema_to_public()
    return reply


def received_in_process(tenant, channel: Channel, raw: bytes) -> Message:
    """Post the signed webhook and process its stored event in this process: the inbound message."""
    answer = post_signed(tenant, channel, raw)
    assert answer.status_code == 200, answer.content
    with tenant_context(tenant):
        event = InboundEvent.objects.get(pk=answer.json()["event_id"])
        inbound_event_process.apply(args=(event.pk,)).get()
        message = Message.objects.filter(inbox_id_denorm=channel.inbox.pk, direction="in").latest(
            "id"
        )
    connection.set_schema_to_public()
    return message
