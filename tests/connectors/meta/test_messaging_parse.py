"""Messenger and Instagram webhooks → ParsedEvent (tests/fixtures/meta: messenger_*, instagram_*)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from connectors.adapters.base import DeliveryStatus, MessageKind, PayloadInvalid
from connectors.meta import INSTAGRAM, MESSENGER
from tests.connectors.meta.support import doc, dumps, raw


def at_ms(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def with_event(name: str, **event):
    """The fixture's envelope with its messaging item's payload replaced by ``event``."""
    payload = doc(name)
    item = payload["entry"][0]["messaging"][0]
    for key in ("message", "postback"):
        item.pop(key, None)
    item.update(event)
    return payload


def test_it_parses_a_messenger_text():
    event = MESSENGER.parse(raw("messenger_webhook_text.json"))
    assert event.routing_keys == ("<PAGE_ID>",)
    (message,) = event.messages
    assert message.kind is MessageKind.TEXT
    assert message.channel_kind == "messenger"
    assert message.external_id == "mid.1457764197618:41d102a3e1ae206a38"
    assert message.sender_id == "<PSID>"
    assert message.routing_key == "<PAGE_ID>"
    assert message.text == "hello, world!"
    assert message.timestamp == at_ms(1458692752478)


def test_it_parses_a_postback_as_an_interactive_reply_with_a_stable_id():
    first = MESSENGER.parse(raw("messenger_webhook_postback.json")).messages[0]
    again = MESSENGER.parse(raw("messenger_webhook_postback.json")).messages[0]
    assert first.kind is MessageKind.INTERACTIVE_REPLY
    assert first.reply_id == "<DEVELOPER_DEFINED_PAYLOAD>"
    assert first.reply_title == first.text == "<BUTTON_TITLE>"
    # No mid in the documented postback: a derived id, the same when Meta retries.
    assert first.external_id == again.external_id
    assert first.external_id.startswith("postback.") and len(first.external_id) <= 256


def test_a_postback_with_a_mid_keeps_it():
    payload = with_event(
        "messenger_webhook_postback.json",
        postback={"mid": "m_AG5Hz2U", "title": "Yes", "payload": "YES"},
    )
    (message,) = MESSENGER.parse(dumps(payload)).messages
    assert message.external_id == "m_AG5Hz2U"


def test_another_postback_gets_another_derived_id():
    one = MESSENGER.parse(raw("messenger_webhook_postback.json")).messages[0]
    payload = doc("messenger_webhook_postback.json")
    payload["entry"][0]["messaging"][0]["timestamp"] += 1
    other = MESSENGER.parse(dumps(payload)).messages[0]
    assert one.external_id != other.external_id


def test_it_parses_a_quick_reply():
    payload = with_event(
        "messenger_webhook_text.json",
        message={"mid": "m_1", "text": "Red", "quick_reply": {"payload": "COLOR_RED"}},
    )
    (message,) = MESSENGER.parse(dumps(payload)).messages
    assert message.kind is MessageKind.INTERACTIVE_REPLY
    assert (message.reply_id, message.reply_title) == ("COLOR_RED", "Red")


def test_it_parses_attachments_as_media_links():
    payload = with_event(
        "messenger_webhook_text.json",
        message={
            "mid": "m_2",
            "attachments": [
                {"type": "image", "payload": {"url": "https://scontent.example/a.jpg"}},
                {"type": "file", "payload": {"url": "https://cdn.example/b.pdf"}},
            ],
        },
    )
    (message,) = MESSENGER.parse(dumps(payload)).messages
    assert message.kind is MessageKind.MEDIA
    assert [(m.type, m.url) for m in message.media] == [
        ("image", "https://scontent.example/a.jpg"),
        ("file", "https://cdn.example/b.pdf"),
    ]


def test_it_parses_a_location_attachment():
    payload = with_event(
        "messenger_webhook_text.json",
        message={
            "mid": "m_3",
            "attachments": [
                {
                    "type": "location",
                    "title": "Pin",
                    "payload": {"coordinates": {"lat": 48.85, "long": 2.35}},
                }
            ],
        },
    )
    (message,) = MESSENGER.parse(dumps(payload)).messages
    assert message.kind is MessageKind.LOCATION
    assert (message.location.latitude, message.location.longitude, message.location.name) == (
        48.85,
        2.35,
        "Pin",
    )


def test_an_unknown_attachment_is_unsupported():
    payload = with_event(
        "messenger_webhook_text.json",
        message={"mid": "m_4", "attachments": [{"type": "story_mention", "payload": {"url": "x"}}]},
    )
    (message,) = MESSENGER.parse(dumps(payload)).messages
    assert (message.kind, message.raw_type) == (MessageKind.UNSUPPORTED, "story_mention")


def test_it_parses_reactions_and_their_removal():
    react = with_event(
        "messenger_webhook_text.json",
        reaction={
            "mid": "m_target",
            "action": "react",
            "reaction": "love",
            "emoji": "\u2764\ufe0f",
        },
    )
    unreact = with_event(
        "messenger_webhook_text.json", reaction={"mid": "m_target", "action": "unreact"}
    )
    (added,) = MESSENGER.parse(dumps(react)).messages
    (removed,) = MESSENGER.parse(dumps(unreact)).messages
    assert added.kind is removed.kind is MessageKind.REACTION
    assert added.reaction.message_id == "m_target" and added.reaction.emoji == "\u2764\ufe0f"
    assert removed.reaction.removed
    assert added.external_id != removed.external_id  # both stored, in order


def test_it_ignores_echoes_of_our_own_messages():
    payload = with_event(
        "messenger_webhook_text.json", message={"mid": "m_echo", "text": "hi", "is_echo": True}
    )
    event = MESSENGER.parse(dumps(payload))
    assert event.messages == () and event.ignored == 1


def test_it_parses_deliveries_and_read_watermarks():
    delivery = with_event(
        "messenger_webhook_text.json", delivery={"mids": ["m_a", "m_b"], "watermark": 1458668856253}
    )
    read = with_event("messenger_webhook_text.json", read={"watermark": 1458668856253})
    delivered = MESSENGER.parse(dumps(delivery)).statuses
    assert [(s.status, s.external_id) for s in delivered] == [
        (DeliveryStatus.DELIVERED, "m_a"),
        (DeliveryStatus.DELIVERED, "m_b"),
    ]
    (seen,) = MESSENGER.parse(dumps(read)).statuses
    assert seen.status is DeliveryStatus.READ
    assert seen.external_id == "" and seen.watermark == at_ms(1458668856253)
    assert seen.recipient_id == "<PSID>"


def test_it_ignores_events_that_carry_no_message():
    payload = with_event("messenger_webhook_text.json", optin={"ref": "signup"})
    event = MESSENGER.parse(dumps(payload))
    assert (event.messages, event.statuses, event.ignored) == ((), (), 1)


def test_it_yields_every_item_of_a_batch():
    payload = doc("messenger_webhook_text.json")
    entry = payload["entry"][0]
    second_item = copy.deepcopy(entry["messaging"][0])
    second_item["message"]["mid"] = "m_second"
    entry["messaging"].append(second_item)
    other_page = copy.deepcopy(doc("messenger_webhook_postback.json")["entry"][0])
    other_page["id"] = "<OTHER_PAGE_ID>"
    payload["entry"].append(other_page)
    event = MESSENGER.parse(dumps(payload))
    assert [m.external_id for m in event.messages][:2] == [
        "mid.1457764197618:41d102a3e1ae206a38",
        "m_second",
    ]
    assert [m.routing_key for m in event.messages] == ["<PAGE_ID>", "<PAGE_ID>", "<OTHER_PAGE_ID>"]
    assert event.routing_keys == ("<PAGE_ID>", "<OTHER_PAGE_ID>")


def test_it_parses_an_instagram_text():
    event = INSTAGRAM.parse(raw("instagram_webhook_dm_text.json"))
    (message,) = event.messages
    assert message.channel_kind == "instagram"
    assert message.kind is MessageKind.TEXT
    assert (message.external_id, message.sender_id, message.routing_key) == (
        "<MESSAGE_ID>",
        "<IGSID>",
        "<IGID>",
    )
    assert message.text == "<MESSAGE_CONTENT>"
    assert message.timestamp == at_ms(1569262485349)


def test_an_instagram_read_names_the_message():
    payload = with_event("instagram_webhook_dm_text.json", read={"mid": "aWdfZAG1faXRlbToxOklH"})
    (seen,) = INSTAGRAM.parse(dumps(payload)).statuses
    assert (seen.status, seen.external_id, seen.watermark) == (
        DeliveryStatus.READ,
        "aWdfZAG1faXRlbToxOklH",
        None,
    )


def test_an_unsent_instagram_message_is_kept_as_unsupported():
    payload = with_event(
        "instagram_webhook_dm_text.json", message={"mid": "<MESSAGE_ID>", "is_deleted": True}
    )
    (message,) = INSTAGRAM.parse(dumps(payload)).messages
    assert (message.kind, message.raw_type) == (MessageKind.UNSUPPORTED, "deleted")


@pytest.mark.parametrize(
    ("adapter", "name"),
    [(MESSENGER, "instagram_webhook_dm_text.json"), (INSTAGRAM, "messenger_webhook_text.json")],
)
def test_each_refuses_the_others_object(adapter, name):
    with pytest.raises(PayloadInvalid) as caught:
        adapter.parse(raw(name))
    assert caught.value.code == "object_unexpected"
