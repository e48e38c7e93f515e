"""Property tests over the channel webhook (hypothesis, against the real database).

Whatever the body and the signature header, the answer is a 2xx or a 4xx JSON
answer with a ``code``, never an exception or a 5xx, and nothing is stored
unless the event was signed and valid. Runs derandomized (the same examples in
every run, no example database) so CI stays stable; ``PARLEY_HYPOTHESIS_EXAMPLES``
raises the count for a longer local hunt.
"""

from __future__ import annotations

import json
import os

import pytest
from django.test import Client, override_settings
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import channels
from conversations.models import ContactIdentity, Message
from conversations.services import body_of
from tests import support
from tests.connectors.test_api_channel import _channel

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("PARLEY_HYPOTHESIS_EXAMPLES", "150"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one channel for all examples, counted per example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# --- strategies ------------------------------------------------------------------------------

SPECIAL_TEXT = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "²",
    "١٢",
    "9" * 5000,
    "",
    " ",
    "https://cdn.example/a.png",
    "image/png",
    "message",
    "status",
    "read",
]
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(categories=["Cs", "Cc", "Nd", "No"]), max_size=8),
    st.sampled_from(SPECIAL_TEXT),
)
numbers = st.one_of(
    st.integers(),
    st.sampled_from(
        [0, -1, 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 10**400, float("nan")]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, hostile_text)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(hostile_text, children, max_size=3)
    ),
    max_leaves=12,
)


@st.composite
def deep(draw):
    depth = draw(st.integers(min_value=25, max_value=60))
    return json.loads("[" * depth + "]" * depth)


anything = st.one_of(values, deep())
attachment = st.fixed_dictionaries(
    {},
    optional={"url": st.one_of(hostile_text, anything), "type": anything, "size": anything},
)
# Events that are valid but for one or two fields, so the checks behind the
# shape checks (text, numbers, attachments, storage) are reached too.
plain_id = st.text(alphabet="abcdef0123456789-", min_size=1, max_size=12)
plain_text = st.text(alphabet="abc xyz.!é", min_size=1, max_size=20)
https_url = st.just("https://cdn.example/a.png")
near_valid_message = st.fixed_dictionaries(
    {
        "type": st.just("message"),
        "id": st.one_of(plain_id, plain_id, hostile_text, numbers),
        "contact": st.fixed_dictionaries(
            {"id": st.one_of(plain_id, plain_id, hostile_text, numbers)},
            optional={"name": st.one_of(plain_text, hostile_text)},
        ),
        "body": st.one_of(plain_text, plain_text, hostile_text, anything),
    },
    optional={
        "attachments": st.lists(
            st.fixed_dictionaries(
                {"url": st.one_of(https_url, https_url, hostile_text)},
                optional={
                    "type": st.one_of(st.just("image/png"), hostile_text, anything),
                    "size": st.one_of(st.integers(0, 2**20), numbers, hostile_text),
                },
            ),
            max_size=2,
        )
    },
)
near_valid_status = st.fixed_dictionaries(
    {
        "type": st.just("status"),
        "message_id": st.one_of(st.integers(1, 10**6), numbers, hostile_text),
        "status": st.sampled_from(["delivered", "read", "failed"]),
    },
    optional={"error": st.one_of(plain_text, hostile_text)},
)
wild_event = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(["message", "status"]), anything)},
    optional={
        "id": st.one_of(hostile_text, numbers, anything),
        "contact": st.one_of(
            st.fixed_dictionaries(
                {"id": st.one_of(hostile_text, numbers)},
                optional={"name": st.one_of(hostile_text, anything)},
            ),
            anything,
        ),
        "body": st.one_of(hostile_text, anything),
        "attachments": st.one_of(st.lists(attachment, max_size=3), anything),
        "message_id": st.one_of(numbers, hostile_text, anything),
        "status": st.one_of(st.sampled_from(["delivered", "read", "failed"]), anything),
        "error": st.one_of(hostile_text, anything),
        "extra": anything,
    },
)
event = st.one_of(near_valid_message, near_valid_status, wild_event)
header_text = st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=80)
headers = st.one_of(
    header_text,
    st.builds(lambda t, v: f"t={t},v1={v}", header_text, header_text),
    st.builds(
        lambda t, v: f"t={t},v1={v}",
        st.sampled_from(["²", "١٧", "9" * 20, "1700000000", ""]),
        st.sampled_from(["00", "é", "0" * 64, ""]),
    ),
)


# --- helpers ---------------------------------------------------------------------------------


def _dumps(document) -> bytes:
    # ensure_ascii keeps lone surrogates as \\ud800 escapes; floats may be NaN/Infinity.
    return json.dumps(document, allow_nan=True).encode()


def _stored(tenant, channel) -> tuple[int, int]:
    with tenant_context(tenant):
        return (
            Message.objects.filter(inbox_id_denorm=channel.inbox.pk).count(),
            ContactIdentity.objects.filter(channel=channel).count(),
        )


def _send(channel, raw: bytes, header: str | None, content_type="application/json"):
    client = Client(HTTP_HOST=support.TENANTS["acme"], raise_request_exception=False)
    extra = {} if header is None else {"HTTP_X_PARLEY_SIGNATURE": header}
    return client.post(
        f"/webhooks/api/{channel.public_id}/", data=raw, content_type=content_type, **extra
    )


def _check(response) -> dict:
    assert response.status_code < 500, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    answer = response.json()
    if response.status_code >= 400:
        assert isinstance(answer.get("code"), str) and answer["code"], answer
    return answer


@pytest.fixture
def channel(acme):
    # Every example is one more event on one channel: lift the per-channel rate limit.
    with override_settings(PARLEY_RATE_CHANNEL_WEBHOOK="1000000/min"):
        yield _channel(acme)


# --- properties ------------------------------------------------------------------------------


@PROPERTY
@given(
    raw=st.one_of(st.binary(max_size=600), values.map(_dumps)),
    header=st.one_of(st.none(), headers),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain"]
    ),
)
def test_any_unsigned_request_gets_a_json_4xx_and_stores_nothing(
    acme, channel, raw, header, content_type
):
    chan, _ = channel
    before = _stored(acme, chan)
    response = _send(chan, raw, header, content_type)
    _check(response)
    assert 400 <= response.status_code < 500
    assert _stored(acme, chan) == before


@PROPERTY
@given(raw=st.one_of(st.binary(max_size=600), values.map(_dumps), event.map(_dumps)))
def test_any_signed_body_gets_a_2xx_or_a_json_4xx(acme, channel, raw):
    chan, secret = channel
    before = _stored(acme, chan)
    header = channels.signature_header(secret=secret, body=raw)
    response = _send(chan, raw, header)
    answer = _check(response)
    if response.status_code != 200 or answer.get("duplicate", True):
        assert _stored(acme, chan) == before


@PROPERTY
@given(document=event)
def test_signed_hostile_events_never_fail_and_valid_ones_are_stored_as_sent(
    acme, channel, document
):
    chan, secret = channel
    before = _stored(acme, chan)
    raw = _dumps(document)
    response = _send(chan, raw, channels.signature_header(secret=secret, body=raw))
    answer = _check(response)
    if (
        response.status_code == 200
        and document.get("type") == "message"
        and not answer["duplicate"]
    ):
        with tenant_context(acme):
            message = Message.objects.get(pk=answer["message_id"])
            sent = document.get("body")
            assert body_of(message) == (sent or "").strip()
    else:
        assert _stored(acme, chan) == before


def test_valid_events_from_the_strategies_are_stored(acme, channel):
    """The properties above see successes too: near-valid events are accepted and stored."""
    chan, secret = channel
    stored = []

    @PROPERTY
    @given(document=near_valid_message)
    def probe(document):
        raw = _dumps(document)
        response = _send(chan, raw, channels.signature_header(secret=secret, body=raw))
        _check(response)
        if response.status_code == 200:
            stored.append(response.json()["message_id"])

    probe()
    assert len(set(stored)) >= 10, len(stored)


def test_the_strategies_reach_the_hostile_cases():
    """The generators do produce what the properties are about (not vacuous)."""
    seen = {"nul": False, "surrogate": False, "huge": False, "nan": False}

    @settings(max_examples=300, derandomize=True, database=None, deadline=None)
    @given(document=event)
    def probe(document):
        text = json.dumps(document, allow_nan=True)
        seen["nul"] |= "\\u0000" in text
        seen["surrogate"] |= "\\ud8" in text or "\\udf" in text
        seen["huge"] |= any(
            len(t) > 19 for t in text.replace("-", " ").split() if t.strip(",]}").isdigit()
        )
        seen["nan"] |= "NaN" in text or "Infinity" in text

    probe()
    assert all(seen.values()), seen
