"""A webhook decrypts only the secret its signature check needs.

Every decryption is a ``credential.used`` audit event (and a seal of the chain),
so decrypting a Meta channel's access and verify tokens on every inbound event
cost two extra audited decryptions per event and put the sending token in memory
for no reason (found by bench/webhooks.py).
"""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from connectors.models import ChannelCredential
from connectors.services import credential_set
from tests.connectors.meta.support import raw, signed
from tests.connectors.test_inbound_events import _meta_channel, _post


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
