"""Whatever the bytes, ``parse`` returns a ParsedEvent or raises PayloadInvalid with a stable code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.adapters.base import ParsedEvent, PayloadInvalid
from connectors.adapters.payload import MAX_BODY_BYTES
from connectors.meta import ADAPTERS, MESSENGER, WHATSAPP
from tests.connectors.meta.support import FIXTURES, doc, dumps, raw

# The safety net in ChannelAdapter.parse turns an adapter bug into this code;
# the properties below demand that it never fires.
BUG = "payload_unreadable"


def outcome(adapter, body: bytes) -> ParsedEvent | str:
    try:
        event = adapter.parse(body)
    except PayloadInvalid as exc:
        assert exc.code and exc.code != BUG, f"adapter bug surfaced as {exc.code}"
        return exc.code
    assert isinstance(event, ParsedEvent)
    return event


def refused(adapter, body: bytes) -> str:
    with pytest.raises(PayloadInvalid) as caught:
        adapter.parse(body)
    return caught.value.code


def text_message(**changes: Any) -> dict[str, Any]:
    payload = doc("wa_webhook_text.json")
    payload["entry"][0]["changes"][0]["value"]["messages"][0].update(changes)
    return payload


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "body_empty"),
        (b"\xff\xfe{}", "encoding_invalid"),
        ("{}".encode("utf-16"), "encoding_invalid"),
        (b"not json", "json_invalid"),
        (b"{} {}", "json_invalid"),
        (b"\xef\xbb\xbf{}", "json_invalid"),  # a BOM
        (b'{"a": NaN}', "number_invalid"),
        (b'{"a": -Infinity}', "number_invalid"),
        (b'{"a": 1e999}', "number_invalid"),
        (b'{"a": 123456789012345678901234567890}', "number_invalid"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "number_invalid"),
        (b'{"a": 1, "a": 2}', "duplicate_key"),
        (b'{"a": "x\\u0000y"}', "nul_character"),
        (b'{"a\\u0000": 1}', "nul_character"),
        (b'{"a": "\\ud800"}', "surrogate_character"),
        (b'{"\\udfff": 1}', "surrogate_character"),
        (b"[" * 40 + b"]" * 40, "payload_too_deep"),
        (b"[" * 200_000, "payload_too_deep"),  # json.loads itself raises RecursionError
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "payload_too_deep"),
        (b" " * (MAX_BODY_BYTES + 1), "payload_too_large"),
        (b"[" + b"0," * 150_000 + b"0]", "payload_too_large"),
        (b"[]", "payload_invalid"),
        (b'"whatsapp_business_account"', "payload_invalid"),
        (b"{}", "object_unexpected"),
    ],
)
@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
def test_it_refuses_hostile_bytes_with_a_stable_code(adapter, body, code):
    assert refused(adapter, body) == code


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"id": "wamid.\u00b2"}, "message_id_invalid"),  # a non-ASCII digit
        ({"id": "wamid.\uff11"}, "message_id_invalid"),  # a full-width digit
        ({"id": "wamid. 1"}, "message_id_invalid"),
        ({"id": "w" * 257}, "message_id_invalid"),
        ({"id": 1.5}, "message_id_invalid"),
        ({"id": True}, "message_id_invalid"),
        ({"id": None}, "message_id_invalid"),
        ({"from": "\u0661\u0662\u0663"}, "sender_invalid"),  # Arabic-Indic digits
        ({"from": ["16505551234"]}, "sender_invalid"),
        ({"timestamp": "\u00b9\u00b2\u00b3"}, "timestamp_invalid"),
        ({"timestamp": "1749416383.5"}, "timestamp_invalid"),
        ({"timestamp": "-1"}, "timestamp_invalid"),
        ({"timestamp": 10**18}, "timestamp_invalid"),
        ({"timestamp": 12}, "timestamp_invalid"),
        ({"timestamp": True}, "timestamp_invalid"),
        ({"text": {"body": "x" * 70_000}}, "text_too_long"),
        ({"text": {"body": 12}}, "text_invalid"),
        ({"text": "plain"}, "text_invalid"),
        ({"context": "wamid.x"}, "context_invalid"),
    ],
)
def test_it_refuses_bad_fields(changes, code):
    assert refused(WHATSAPP, dumps(text_message(**changes))) == code


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        (("entry",), {"id": "x"}, "entry_invalid"),
        (("entry", 0, "changes"), "messages", "change_invalid"),
        (("entry", 0, "changes", 0, "value"), None, "change_invalid"),
        (("entry", 0, "changes", 0, "value", "metadata"), None, "metadata_invalid"),
        (
            ("entry", 0, "changes", 0, "value", "metadata", "phone_number_id"),
            "1\u00b2",
            "routing_key_invalid",
        ),
        (("entry", 0, "changes", 0, "value", "messages"), {"0": {}}, "message_invalid"),
        (("entry", 0, "changes", 0, "value", "messages", 0), "text", "message_invalid"),
    ],
)
def test_it_refuses_a_broken_envelope(path, value, code):
    payload = doc("wa_webhook_text.json")
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert refused(WHATSAPP, dumps(payload)) == code


def test_a_display_name_is_sanitised_not_refused():
    payload = doc("wa_webhook_text.json")
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = (
        "  Eve\u202e\u200b\x07 the\n\tGreat" + "!" * 500
    )
    (message,) = WHATSAPP.parse(dumps(payload)).messages
    assert message.sender_name == ("Eve the Great" + "!" * 500)[:200]
    assert message.sender_name == WHATSAPP.parse(dumps(payload)).messages[0].sender_name


def test_non_ascii_text_survives_as_sent():
    body = "Gr\u00fc\u00dfe \U0001f600 \u0661\u0662"
    (message,) = WHATSAPP.parse(dumps(text_message(text={"body": body}))).messages
    assert message.text == body


def test_meta_escaped_unicode_reads_like_raw_utf8():
    escaped = dumps(text_message(text={"body": "\u00e4\u00f6\u00e5"}))
    assert b"\\u00e4" in escaped  # the way Meta sends it
    (message,) = WHATSAPP.parse(escaped).messages
    assert message.text == "\u00e4\u00f6\u00e5"


def test_the_safety_net_turns_an_adapter_bug_into_payload_invalid(monkeypatch):
    def broken(document):
        raise KeyError("a bug")

    monkeypatch.setattr(MESSENGER, "parse_document", broken)
    assert refused(MESSENGER, raw("messenger_webhook_text.json")) == BUG


# --- properties ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=40,
)


def _messaging(event: dict[str, Any], name: str = "messenger_webhook_text.json") -> dict[str, Any]:
    payload = doc(name)
    item = payload["entry"][0]["messaging"][0]
    item.pop("message")
    item.update(event)
    return payload


def _wa_contacts() -> dict[str, Any]:
    payload = doc("wa_webhook_text.json")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message.update(
        type="contacts",
        contacts=[
            {
                "name": {"formatted_name": "B"},
                "phones": [{"phone": "+1"}],
                "emails": [{"email": "e@x"}],
            }
        ],
    )
    return payload


# The documented payloads, plus the shapes the tests build on them, as seeds to mutate:
# every branch of every adapter has a seed that reaches it.
DOCUMENTS = [json.loads(p.read_bytes()) for p in sorted(FIXTURES.glob("*webhook*.json"))] + [
    _wa_contacts(),
    _messaging(
        {
            "message": {
                "mid": "m",
                "text": "t",
                "quick_reply": {"payload": "P"},
                "reply_to": {"mid": "r"},
            }
        }
    ),
    _messaging(
        {"message": {"mid": "m", "attachments": [{"type": "image", "payload": {"url": "u"}}]}}
    ),
    _messaging(
        {
            "message": {
                "mid": "m",
                "attachments": [
                    {"type": "location", "payload": {"coordinates": {"lat": 1, "long": 2}}}
                ],
            }
        }
    ),
    _messaging({"message": {"mid": "m", "text": "t", "is_echo": True}}),
    _messaging({"reaction": {"mid": "m", "action": "react", "emoji": "x"}}),
    _messaging({"delivery": {"mids": ["a", "b"], "watermark": 1458668856253}}),
    _messaging({"read": {"watermark": 1458668856253}}),
    _messaging({"read": {"mid": "m"}}, "instagram_webhook_dm_text.json"),
    _messaging({"message": {"mid": "m", "is_deleted": True}}, "instagram_webhook_dm_text.json"),
]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated_documents(draw) -> Any:
    """A documented Meta payload with one to three values replaced by arbitrary JSON:
    reaches the adapters' inner readers, where random JSON alone rarely gets."""
    document = json.loads(json.dumps(draw(st.sampled_from(DOCUMENTS))))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = draw(json_values)
    return document


def encode(value: Any) -> bytes:
    # allow_nan and surrogatepass: let hostile values reach the adapter as bytes.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
@PROPERTY
@given(body=st.binary(max_size=4096))
def test_any_bytes_parse_or_are_refused(adapter, body):
    outcome(adapter, body)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
@PROPERTY
@given(value=json_values)
def test_any_json_parses_or_is_refused(adapter, value):
    outcome(adapter, encode(value))
    outcome(adapter, json.dumps(value).encode())  # the escaped form Meta sends


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
@PROPERTY
@given(document=mutated_documents())
def test_any_mutated_meta_payload_parses_or_is_refused(adapter, document):
    outcome(adapter, encode(document))


@PROPERTY
@given(document=mutated_documents())
def test_parsing_is_deterministic(document):
    body = encode(document)
    for adapter in ADAPTERS:
        assert outcome(adapter, body) == outcome(adapter, body)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
@PROPERTY
@given(
    headers=st.dictionaries(
        st.sampled_from(["X-Hub-Signature-256", "x-hub-signature-256", "X-Other"])
        | st.text(max_size=20),
        st.text(max_size=200) | st.binary(max_size=50) | st.none() | st.integers(),
        max_size=4,
    ),
    body=st.binary(max_size=512),
    secret=st.text(max_size=40),
)
def test_verify_never_raises(adapter, headers, body, secret):
    assert adapter.verify(headers, body, {"app_secret": secret}) in (True, False)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
@PROPERTY
@given(
    params=st.dictionaries(
        st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge"]), st.text(max_size=140)
    )
)
def test_verify_challenge_never_raises(adapter, params):
    answer = adapter.verify_challenge(params, {"verify_token": "tok"})
    assert answer is None or answer == params["hub.challenge"]


@pytest.mark.parametrize("status", [[], {}, 1, None, "SENT"])
def test_a_status_of_the_wrong_type_is_ignored_not_a_crash(status):
    # Found by the mutated-payload property: an unhashable status once raised TypeError.
    payload = doc("wa_webhook_status_read_pywa_fixture.json")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = status
    event = WHATSAPP.parse(dumps(payload))
    assert (event.statuses, event.ignored) == ((), 1)
