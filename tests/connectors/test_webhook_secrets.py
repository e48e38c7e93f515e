"""A webhook decrypts only the secret its signature check needs, a delivery only the one
sending needs.

Every decryption is a ``credential.used`` audit event (and a seal of the chain),
so decrypting a Meta channel's access and verify tokens on every inbound event
cost two extra audited decryptions per event and put the sending token in memory
for no reason (found by bench/webhooks.py).
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from connectors.models import Channel, ChannelCredential
from connectors.services import credential_set
from connectors.tasks import message_deliver
from conversations.models import Inbox
from conversations.services import message_receive, reply_send
from tests.connectors.meta.support import TOKEN, raw, signed
from tests.connectors.test_inbound_events import _meta_channel, _post
from tests.fakes.graph import FakeGraph


def _used(channel) -> list[str]:
    """The roles of the channel's credentials decrypted so far."""
    links = {
        str(link.credential_id): link.role
        for link in ChannelCredential.objects.filter(channel_id=channel.pk)
    }
    return sorted(
        links[event.target_id]
        for event in AuditEvent.objects.filter(action="credential.used", target_id__in=links)
    )


@pytest.mark.django_db
def test_a_meta_webhook_decrypts_the_app_secret_only(acme):
    channel = _meta_channel(acme, "whatsapp", "106540352242922")
    with tenant_context(acme):
        credential = credential_set(
            name=f"{channel.public_id}-access-token",
            kind="access_token",
            connector="whatsapp",
            secret="EAAB-not-for-verifying",
        )
        ChannelCredential.objects.create(
            channel=channel, role="access_token", credential=credential
        )
    body = raw("wa_webhook_text.json")

    response = _post(channel, body, signed(body))

    assert response.status_code == 200, response.content
    with tenant_context(acme):
        assert _used(channel) == ["app_secret"]


@pytest.mark.django_db
def test_a_refused_meta_signature_still_decrypts_the_app_secret_only(acme):
    channel = _meta_channel(acme, "messenger", "")
    body = raw("messenger_webhook_text.json")

    response = _post(channel, body, signed(body, "not-the-app-secret"))

    assert response.status_code == 401 and response.json()["code"] == "signature_invalid"
    with tenant_context(acme):
        assert _used(channel) == ["app_secret"]


@pytest.mark.django_db
def test_a_whatsapp_reply_decrypts_the_access_token_only(acme):
    channel = _meta_channel(acme, "whatsapp", "106540352242922")
    with FakeGraph(token=TOKEN) as graph, tenant_context(acme):
        Channel.objects.filter(pk=channel.pk).update(
            settings={"phone_number_id": "106540352242922", "graph_base_url": graph.base_url}
        )
        credential = credential_set(
            name=f"{channel.public_id}-access-token",
            kind="access_token",
            connector="whatsapp",
            secret=TOKEN,
        )
        ChannelCredential.objects.create(
            channel=channel, role="access_token", credential=credential
        )
        inbox = Inbox.objects.get(channel_id=channel.pk)
        message, _ = message_receive(
            inbox=inbox, contact_external_id="16505551234", body="hello", external_id="wamid.1"
        )
        admin = get_user_model().objects.get(email="admin@acme.test")
        reply = reply_send(by=admin, conversation_id=message.conversation_id, body="Hi there")
        before = _used(channel)

        assert message_deliver.apply(args=(reply.pk,)).get()["delivery"] == "sent"

        assert len(graph.requests) == 1
        used = _used(channel)
        for role in before:
            used.remove(role)
        assert used == ["access_token"]
