"""Hostile input on the API channel webhook: every refusal is a fast 400/401 JSON
answer with a stable code, audited, with nothing stored; the signature parser
never raises anything but SignatureError."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client, override_settings
from django_tenants.utils import tenant_context

from connectors import channels
from conversations.models import ContactIdentity, Message
from tests import support
from tests.connectors.test_api_channel import _channel, _inbound, _post, _refusals

# Each answer must come within this (the surrogate cases took 13-20 s before).
FAST = 1.5


# --- the signature header --------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "t=²,v1=00",
        "t=١٧٠٠٠٠٠٠٠٠,v1=00",
        "t=" + "9" * 5000 + ",v1=00",
        "t=1700000000,v1=é",
        "t=1700000000,v1=\ud800",
        "t=1700000000,v1=\x00",
        "t=1700000000,v1=" + "ß" * 64,
        "t= 1700000000 ,v1= 00 ",
        ",,,,",
        "t==,v1==",
        "=,=",
        "\x00",
    ],
)
def test_it_refuses_any_garbled_header_with_a_signature_error(header):
    body = b"{}"
    with pytest.raises(channels.SignatureError) as caught:
        channels.signature_verify(secret="s3cret", body=body, header=header, now=1_700_000_000)
    assert caught.value.code == "signature_invalid"


def test_it_still_accepts_spaces_around_a_good_signature():
    body = b"{}"
    good = channels.signature_header(secret="s3cret", body=body, timestamp=1_700_000_000)
    t, v1 = good.split(",")
    assert channels.signature_verify(
        secret="s3cret", body=body, header=f" {t} , {v1} ", now=1_700_000_000
    )


def _nothing_stored(acme, channel):
    with tenant_context(acme):
        assert not Message.objects.filter(inbox_id_denorm=channel.inbox.pk).exists()
        assert not ContactIdentity.objects.filter(channel=channel).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_it_answers_a_unicode_digit_timestamp_with_401(acme, debug):
    channel, secret = _channel(acme)
    client = Client(HTTP_HOST=support.TENANTS["acme"], raise_request_exception=False)
    with override_settings(DEBUG=debug):
        response = client.post(
            f"/webhooks/api/{channel.public_id}/",
            data=json.dumps(_inbound()).encode(),
            content_type="application/json",
            HTTP_X_PARLEY_SIGNATURE="t=²,v1=00",
        )
    assert response.status_code == 401, response.content[:300]
    assert response.json()["code"] == "signature_invalid"
    _nothing_stored(acme, channel)
    assert [r["details"]["reason"] for r in _refusals(acme, channel)] == ["signature_invalid"]


# --- signed events with hostile content --------------------------------------------------------


def _with_contact(**contact):
    event = _inbound()
    event["contact"].update(contact)
    return event


def _attachment(**fields):
    return _inbound(
        attachments=[{"url": "https://cdn.example/a.png", "type": "image/png", **fields}]
    )


def _nested(depth):
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = {
    # status callbacks
    "message_id superscript two": (
        json.dumps({"type": "status", "message_id": "²", "status": "read"}),
        "invalid",
    ),
    "message_id arabic-indic digits": (
        json.dumps({"type": "status", "message_id": "١٢", "status": "read"}),
        "invalid",
    ),
    "message_id 5000 digit string": (
        json.dumps({"type": "status", "message_id": "9" * 5000, "status": "read"}),
        "invalid",
    ),
    "message_id 5000 digit number": (
        '{"type": "status", "message_id": ' + "9" * 5000 + ', "status": "read"}',
        "invalid",
    ),
    "message_id past 64 bits": (
        json.dumps({"type": "status", "message_id": 2**64, "status": "read"}),
        "invalid",
    ),
    "message_id boolean": (
        json.dumps({"type": "status", "message_id": True, "status": "read"}),
        "invalid",
    ),
    "status as a list": (
        json.dumps({"type": "status", "message_id": 1, "status": ["read"]}),
        "invalid",
    ),
    "error with NUL": (
        json.dumps({"type": "status", "message_id": 1, "status": "failed", "error": "a\x00"}),
        "invalid",
    ),
    # messages
    "NUL in id": (json.dumps(_inbound(ext_id="ext\x00")), "invalid"),
    "NUL in contact.id": (json.dumps(_with_contact(id="cust\x00")), "invalid"),
    "NUL in contact.name": (json.dumps(_with_contact(name="Ada\x00")), "invalid"),
    "NUL in body": (json.dumps(_inbound(body="hello\x00")), "invalid"),
    "NUL in attachment url": (json.dumps(_attachment(url="https://cdn.example/\x00")), "invalid"),
    "NUL in attachment type": (json.dumps(_attachment(type="\x00")), "invalid"),
    "NUL in a key": (json.dumps({**_inbound(), "x\x00": 1}), "invalid"),
    "surrogate in body": (json.dumps(_inbound(body="\ud800")), "invalid"),
    "surrogate in contact.name": (json.dumps(_with_contact(name="\ud800")), "invalid"),
    "surrogate in attachment type": (json.dumps(_attachment(type="\udfff")), "invalid"),
    "huge int as contact.id": (json.dumps(_with_contact(id=10**30)), "invalid"),
    "float as contact.id": (json.dumps(_with_contact(id=1.5)), "invalid"),
    "list as body": (json.dumps(_inbound(body=["x"])), "invalid"),
    "object as attachments": (json.dumps(_inbound(attachments={"url": "x"})), "invalid"),
    "attachment size as string": (json.dumps(_attachment(size="12")), "invalid"),
    "attachment size huge": (json.dumps(_attachment(size=10**18)), "invalid"),
    "NaN": ('{"type": "message", "id": NaN}', "invalid_json"),
    "Infinity number": ('{"type": "status", "message_id": 1e400, "status": "read"}', "invalid"),
    "deep nesting": (json.dumps({**_inbound(), "extra": _nested(100)}), "invalid"),
    "very deep nesting": ('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}", "invalid_json"),
    "not UTF-8": (b'{"type": "message", "body": "\xff\xfe"}', "invalid_json"),
    "UTF-16": (json.dumps(_inbound()).encode("utf-16"), "invalid_json"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_it_refuses_hostile_signed_events_fast_and_stores_nothing(acme, case, debug):
    channel, secret = _channel(acme)
    raw, code = HOSTILE[case]
    raw = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    started = time.monotonic()
    with override_settings(DEBUG=debug):
        response = _post("acme", channel, secret=secret, raw=raw)
    elapsed = time.monotonic() - started
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code
    assert elapsed < FAST, f"{case}: {elapsed:.2f}s"
    _nothing_stored(acme, channel)
    refusals = _refusals(acme, channel)
    assert [r["details"]["reason"] for r in refusals] == [code]
    assert refusals[0]["outcome"] == "denied"
