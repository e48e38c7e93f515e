"""After a 131047 ("only a template message now") the agent is offered the channel's
re-engagement template: the thread shows the action on the failed reply, posting it
queues a template message, and the channel sends it by name and language."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from connectors import channels, delivery
from conversations.models import Message
from conversations.services import template_send
from tests import support
from tests.connectors.meta.support import TOKEN
from tests.connectors.test_api_channel import _channel, _conversation_with_reply
from tests.connectors.whatsapp_flow import (
    CUSTOMER,
    agent_replies,
    customer_text,
    received_in_process,
    user,
    whatsapp_channel,
)
from tests.fakes.graph import FakeGraph

TEMPLATE = {"reengagement_template": "hello_world", "reengagement_language": "en_US"}
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def graph():
    with FakeGraph(token=TOKEN) as server:
        yield server


def _refused_outside_window(acme, graph, **settings):
    """A WhatsApp conversation whose agent reply Graph refused with 131047."""
    channel = whatsapp_channel(acme, graph.base_url, **settings)
    inbound = received_in_process(acme, channel, customer_text())
    reply = agent_replies(acme, channel, inbound)
    graph.fail("outside_window")
    with tenant_context(acme):
        assert delivery.delivery_attempt(message_id=reply.pk) == "failed"
        reply = Message.objects.get(pk=reply.pk)
    connection.set_schema_to_public()
    assert reply.awaits_template
    return channel, inbound, reply


def _messages(acme, channel):
    with tenant_context(acme):
        found = list(Message.objects.filter(inbox_id_denorm=channel.inbox.pk).order_by("id"))
    connection.set_schema_to_public()
    return found


@pytest.mark.django_db
def test_the_agent_sends_the_channels_template_after_a_131047(acme, graph):
    channel, inbound, refused = _refused_outside_window(acme, graph, **TEMPLATE)
    agent = support.signed_in(acme, "agent@acme.test")
    page = agent.get(f"/inbox/c/{inbound.conversation_id}/").content.decode()
    row = page[page.index(f'id="m-{refused.pk}"') :]
    assert f'hx-post="/connectors/messages/{refused.pk}/template/"' in row[: row.index("</form>")]

    answer = agent.post(f"/connectors/messages/{refused.pk}/template/", **HTMX)
    assert answer.status_code == 200, answer.content
    assert "Template message: hello_world (en_US)" in answer.content.decode()
    sent = _messages(acme, channel)[-1]
    assert sent.direction == "out" and sent.delivery == "queued"
    assert sent.template == {"name": "hello_world", "language": "en_US"}
    with tenant_context(acme):
        assert delivery.delivery_attempt(message_id=sent.pk) == "sent"
        assert AuditEvent.objects.filter(
            action="conversation.template_sent", target_id=str(inbound.conversation_id)
        ).exists()
    connection.set_schema_to_public()
    assert graph.requests[-1].json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    # The sent template is no failed reply: no offer on it.
    page = agent.get(f"/inbox/c/{inbound.conversation_id}/").content.decode()
    row = page[page.index(f'id="m-{sent.pk}"') :]
    assert "template-offer" not in row[: row.index("</small>") + 200]


@pytest.mark.django_db
def test_no_template_configured_or_nothing_to_re_engage_is_a_clear_409(acme, graph):
    channel, inbound, refused = _refused_outside_window(acme, graph)
    agent = support.signed_in(acme, "agent@acme.test")
    before = len(_messages(acme, channel))
    answer = agent.post(f"/connectors/messages/{refused.pk}/template/", **HTMX)
    assert answer.status_code == 409 and "No re-engagement template" in answer.content.decode()
    assert answer["HX-Retarget"] == "#thread-errors"
    answer = agent.post(f"/connectors/messages/{inbound.pk}/template/", **HTMX)
    assert answer.status_code == 409
    assert len(_messages(acme, channel)) == before


@pytest.mark.django_db
def test_someone_who_cannot_see_the_conversation_gets_404(acme, globex, graph):
    channel, _, refused = _refused_outside_window(acme, graph, **TEMPLATE)
    before = len(_messages(acme, channel))
    # A user of another tenant; an id that does not exist.
    other = support.signed_in(globex, "agent@globex.test")
    assert other.post(f"/connectors/messages/{refused.pk}/template/").status_code == 404
    assert (
        support.signed_in(acme, "agent@acme.test")
        .post("/connectors/messages/999999999/template/")
        .status_code
        == 404
    )
    assert len(_messages(acme, channel)) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "values",
    [
        {"reengagement_template": "Hello World", "reengagement_language": "en_US"},
        {"reengagement_template": "hello²", "reengagement_language": "en_US"},
        {"reengagement_template": "hello_world", "reengagement_language": "english"},
        {"reengagement_template": "hello_world"},
        {"reengagement_language": "en"},
        {"reengagement_template": ["hello_world"], "reengagement_language": "en"},
        {"reengagement_template": "hello\x00", "reengagement_language": "en"},
    ],
)
def test_the_channel_refuses_a_malformed_re_engagement_template(values):
    with pytest.raises(ValidationError):
        channels.channel_settings_clean(
            kind="whatsapp", values={"phone_number_id": "106540352242922", **values}
        )


def test_the_channel_keeps_a_well_formed_re_engagement_template():
    cleaned = channels.channel_settings_clean(
        kind="whatsapp", values={"phone_number_id": "106540352242922", **TEMPLATE}
    )
    assert cleaned == {"phone_number_id": "106540352242922", **TEMPLATE}


@pytest.mark.django_db
def test_a_template_reply_on_a_kind_without_templates_fails_before_sending(acme):
    channel, secret = _channel(acme)
    reply_id, conversation_id = _conversation_with_reply(acme, channel, secret)
    with tenant_context(acme):
        with pytest.raises(ValidationError):
            template_send(
                by=user(acme, "agent"), conversation_id=conversation_id, name="Bad", language="en"
            )
        message = template_send(
            by=user(acme, "agent"), conversation_id=conversation_id, name="hi", language="en"
        )
        assert delivery.delivery_attempt(message_id=message.pk) == "failed"
        message = Message.objects.get(pk=message.pk)
    assert message.delivery_error == "This channel cannot send template messages."
