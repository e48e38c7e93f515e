"""WhatsApp webhooks → ParsedEvent, driven by Meta's documented payloads (tests/fixtures/meta)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from connectors.adapters.base import DeliveryStatus, MessageKind, PayloadInvalid
from connectors.meta import WHATSAPP
from tests.connectors.meta.support import doc, dumps, raw

ROUTING = "106540352242922"


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def only_message(name: str):
    event = WHATSAPP.parse(raw(name))
    assert len(event.messages) == 1 and not event.statuses and not event.errors
    assert event.routing_keys == (ROUTING,)
    return event.messages[0]


def test_it_parses_a_text_message():
    message = only_message("wa_webhook_text.json")
    assert message.kind is MessageKind.TEXT
    assert message.channel_kind == "whatsapp"
    assert message.routing_key == ROUTING
    assert message.external_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert message.sender_id == "16505551234"
    assert message.sender_name == "Sheena Nelson"
    assert message.timestamp == at(1749416383)
    assert message.text == "Does it come in another color?"
    assert message.raw_type == "text"


def test_it_parses_an_interactive_button_reply():
    message = only_message("wa_webhook_interactive_button_reply.json")
    assert message.kind is MessageKind.INTERACTIVE_REPLY
    assert (message.reply_id, message.reply_title, message.text) == (
        "cancel-button",
        "Cancel",
        "Cancel",
    )
    assert message.context_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA"
    assert message.raw_type == "interactive.button_reply"


def test_it_parses_an_interactive_list_reply():
    message = only_message("wa_webhook_interactive_list_reply.json")
    assert message.kind is MessageKind.INTERACTIVE_REPLY
    assert message.reply_id == "priority_express"
    assert message.reply_title == "Priority Mail Express"
    assert message.reply_description == "Next Day to 2 Days"
    assert message.raw_type == "interactive.list_reply"


def test_it_parses_an_image_as_a_media_link():
    message = only_message("wa_webhook_image.json")
    assert message.kind is MessageKind.MEDIA
    (media,) = message.media
    assert media.type == "image"
    assert media.id == "1003383421387256"
    assert media.mime_type == "image/jpeg"
    assert media.caption == message.text == "Taj Mahal"
    assert media.sha256 == "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI="
    assert media.url.startswith("https://lookaside.fbsbx.com/whatsapp_business/attachments/")


def test_it_parses_a_location():
    message = only_message("wa_webhook_location.json")
    assert message.kind is MessageKind.LOCATION
    location = message.location
    assert (location.latitude, location.longitude) == (37.44221496582, -122.16165924072)
    assert location.name == "Philz Coffee"
    assert location.address == "101 Forest Ave, Palo Alto, CA 94301"
    assert location.url == "https://philzcoffee.com/"


def test_it_parses_a_reaction():
    message = only_message("wa_webhook_reaction.json")
    assert message.kind is MessageKind.REACTION
    assert (
        message.reaction.message_id
        == "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="
    )
    assert message.reaction.emoji == "\U0001f44d"
    assert not message.reaction.removed


def test_it_parses_a_removed_reaction():
    message = only_message("wa_webhook_reaction_removed.json")
    assert message.kind is MessageKind.REACTION
    assert (
        message.reaction.message_id
        == "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA="
    )
    assert message.reaction.removed and message.reaction.emoji == ""


def test_it_parses_shared_contacts():
    # Meta's "contacts" message shape (webhooks reference, messages/contacts).
    payload = doc("wa_webhook_text.json")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message["type"] = "contacts"
    message["contacts"] = [
        {
            "name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara"},
            "phones": [{"phone": "+1 (940) 555-1234", "type": "HOME", "wa_id": "19405551234"}],
            "emails": [{"email": "bjohnson@luckyshrub.com", "type": "WORK"}],
        },
        {"name": {"formatted_name": "No Phone"}},
    ]
    (parsed,) = WHATSAPP.parse(dumps(payload)).messages
    assert parsed.kind is MessageKind.CONTACTS
    first, second = parsed.contacts
    assert first.name == "Barbara J. Johnson"
    assert first.phones == ("+1 (940) 555-1234",)
    assert first.emails == ("bjohnson@luckyshrub.com",)
    assert (second.name, second.phones, second.emails) == ("No Phone", (), ())


@pytest.mark.parametrize("message_type", ["unsupported", "system", "order", "a_type_from_2030"])
def test_it_keeps_an_unknown_type_as_unsupported(message_type):
    payload = doc("wa_webhook_text.json")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message["type"] = message_type
    message[message_type] = {"anything": ["goes", 1, None]}
    (parsed,) = WHATSAPP.parse(dumps(payload)).messages
    assert parsed.kind is MessageKind.UNSUPPORTED
    assert parsed.raw_type == message_type
    assert parsed.external_id.startswith("wamid.")


def test_it_keeps_an_unknown_interactive_type_as_unsupported():
    payload = doc("wa_webhook_interactive_button_reply.json")
    interactive = payload["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]
    interactive.clear()
    interactive.update(type="nfm_reply", nfm_reply={"response_json": "{}"})
    (parsed,) = WHATSAPP.parse(dumps(payload)).messages
    assert parsed.kind is MessageKind.UNSUPPORTED
    assert parsed.raw_type == "interactive.nfm_reply"


def test_it_parses_a_template_quick_reply_button():
    payload = doc("wa_webhook_text.json")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message.update(type="button", button={"payload": "STOP promotions", "text": "Stop"})
    (parsed,) = WHATSAPP.parse(dumps(payload)).messages
    assert parsed.kind is MessageKind.INTERACTIVE_REPLY
    assert (parsed.reply_id, parsed.reply_title) == ("STOP promotions", "Stop")


@pytest.mark.parametrize(
    ("name", "status", "external_id", "recipient", "when"),
    [
        (
            "wa_webhook_status_sent.json",
            DeliveryStatus.SENT,
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
            "16505551234",
            1750030073,
        ),
        (
            "wa_webhook_status_delivered.json",
            DeliveryStatus.DELIVERED,
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA",
            "16505551234",
            1750263773,
        ),
        (
            "wa_webhook_status_read_pywa_fixture.json",
            DeliveryStatus.READ,
            "wamid.xyzxyz",
            "972987654321",
            1689380458,
        ),
        # Meta's page calls this its "read" example but the payload says "sent":
        # the adapter reports what the payload says.
        (
            "wa_webhook_status_read_META_DOC_BUG.json",
            DeliveryStatus.SENT,
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
            "16505551234",
            1750030073,
        ),
    ],
)
def test_it_parses_status_changes(name, status, external_id, recipient, when):
    event = WHATSAPP.parse(raw(name))
    assert not event.messages
    (update,) = event.statuses
    assert update.status is status
    assert update.external_id == external_id
    assert update.recipient_id == recipient
    assert update.timestamp == at(when)
    assert update.error_code is None and update.error_title == ""
    assert update.routing_key == event.routing_keys[0]


def test_it_parses_a_failed_status_with_its_error():
    (update,) = WHATSAPP.parse(raw("wa_webhook_status_failed_131049.json")).statuses
    assert update.status is DeliveryStatus.FAILED
    assert update.error_code == 131049
    assert (
        update.error_title
        == "This message was not delivered to maintain healthy ecosystem engagement."
    )


def test_it_skips_statuses_it_does_not_record():
    payload = doc("wa_webhook_status_sent.json")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "deleted"
    event = WHATSAPP.parse(dumps(payload))
    assert event.statuses == () and event.ignored == 1


def test_it_reports_account_errors():
    event = WHATSAPP.parse(raw("wa_webhook_errors_130429.json"))
    assert not event.messages and not event.statuses
    (error,) = event.errors
    assert (error.code, error.title, error.routing_key) == (130429, "Rate limit hit", ROUTING)


def test_it_yields_every_message_of_a_batched_post():
    event = WHATSAPP.parse(raw("wa_webhook_batched_2changes_netflie_fixture.json"))
    assert [m.text for m in event.messages] == ["MESSAGE_BODY", "MESSAGE_BODY2"]
    assert [m.timestamp for m in event.messages] == [at(1669233778), at(1669233779)]
    assert {m.sender_name for m in event.messages} == {"NAME"}
    assert event.routing_keys == ("PHONE_NUMBER_ID",)


def test_it_yields_everything_of_many_entries_and_changes():
    """Two entries (two phone numbers), three changes, messages and statuses mixed."""
    text = doc("wa_webhook_text.json")["entry"][0]
    image_change = doc("wa_webhook_image.json")["entry"][0]["changes"][0]
    status_change = doc("wa_webhook_status_read_pywa_fixture.json")["entry"][0]["changes"][0]
    first = copy.deepcopy(text)
    first["changes"].append(image_change)
    second = {
        "id": "5467539754836534",
        "changes": [status_change, {"field": "account_update", "value": {}}],
    }
    event = WHATSAPP.parse(dumps({"object": "whatsapp_business_account", "entry": [first, second]}))
    assert [m.kind for m in event.messages] == [MessageKind.TEXT, MessageKind.MEDIA]
    assert [s.status for s in event.statuses] == [DeliveryStatus.READ]
    assert event.routing_keys == (ROUTING, "1122334455667")
    assert event.ignored == 1  # the account_update change


def test_it_refuses_another_object():
    payload = doc("wa_webhook_text.json")
    payload["object"] = "page"
    with pytest.raises(PayloadInvalid) as caught:
        WHATSAPP.parse(dumps(payload))
    assert caught.value.code == "object_unexpected"


def test_it_refuses_a_batch_over_the_cap():
    payload = doc("wa_webhook_text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    one = value["messages"][0]
    value["messages"] = [dict(one, id=f"wamid.{i}") for i in range(1001)]
    with pytest.raises(PayloadInvalid) as caught:
        WHATSAPP.parse(dumps(payload))
    assert caught.value.code == "batch_too_large"


def test_it_counts_the_cap_across_changes():
    payload = doc("wa_webhook_text.json")
    change = payload["entry"][0]["changes"][0]
    one = change["value"]["messages"][0]
    change["value"]["messages"] = [dict(one, id=f"wamid.{i}") for i in range(600)]
    payload["entry"][0]["changes"] = [change, copy.deepcopy(change)]
    with pytest.raises(PayloadInvalid) as caught:
        WHATSAPP.parse(dumps(payload))
    assert caught.value.code == "batch_too_large"
