"""Hostile input on the conversations API: a 400 JSON answer with a stable code,
nothing stored, and (for bodies the JSON parser refuses) an audited refusal."""

from __future__ import annotations

import json
import time

import pytest
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from conversations.models import Conversation, Message
from tests import support
from tests.conversations.test_inbox import setup  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def _messages(acme, conversation_id):
    with tenant_context(acme):
        return Message.objects.filter(conversation_id=conversation_id).count()


def _refusals(acme):
    with tenant_context(acme):
        return AuditEvent.objects.filter(action="api.input_refused", outcome="denied").count()


def _attachment(**fields):
    return {"url": "https://cdn.example/a.png", "type": "image/png", "size": 10, **fields}


BODIES = {
    "NUL attachment type": {"body": "hi", "attachments": [_attachment(type="\x00")]},
    "NUL attachment url": {"body": "hi", "attachments": [_attachment(url="https://x/\x00")]},
    "NUL in body": {"body": "hi\x00"},
    "surrogate in body": {"body": "\ud800"},
    "surrogate in attachment type": {"body": "hi", "attachments": [_attachment(type="\udfff")]},
    "NUL in an unknown key": {"body": "hi", "x\x00": 1},
    "huge attachment size": {"body": "hi", "attachments": [_attachment(size=10**30)]},
}


@pytest.mark.parametrize("case", list(BODIES))
def test_it_refuses_text_the_database_cannot_store(acme, setup, case):  # noqa: F811
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    before, refused = _messages(acme, cid), _refusals(acme)
    raw = json.dumps(BODIES[case]).encode("utf-8", "surrogatepass")
    started = time.monotonic()
    response = agent.post(
        f"/api/v1/conversations/{cid}/messages/", data=raw, content_type="application/json"
    )
    assert time.monotonic() - started < 1.5
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "invalid"
    assert _messages(acme, cid) == before
    assert _refusals(acme) == refused + 1


@pytest.mark.parametrize(
    "attachment",
    [
        _attachment(type=["image/png"]),
        _attachment(size="١٢"),
        _attachment(size=True),
        _attachment(url=None),
        "https://cdn.example/a.png",
    ],
)
def test_it_refuses_attachments_of_the_wrong_shape(acme, setup, attachment):  # noqa: F811
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    before = _messages(acme, cid)
    response = agent.post(
        f"/api/v1/conversations/{cid}/messages/",
        {"body": "hi", "attachments": [attachment]},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "invalid"
    assert _messages(acme, cid) == before


def test_it_still_accepts_a_good_attachment(acme, setup):  # noqa: F811
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    response = agent.post(
        f"/api/v1/conversations/{cid}/messages/",
        {"body": "see attached", "attachments": [_attachment()]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["attachments"] == [_attachment()]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"body": NaN}',
        b'{"body": "\xff"}',
        b'{"body": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ],
)
def test_it_answers_broken_json_with_parse_error(acme, setup, raw):  # noqa: F811
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    response = agent.post(
        f"/api/v1/conversations/{cid}/messages/", data=raw, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "parse_error"


def test_it_refuses_deep_nesting(acme, setup):  # noqa: F811
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    deep: object = "x"
    for _ in range(100):
        deep = [deep]
    response = agent.post(
        f"/api/v1/conversations/{cid}/messages/",
        {"body": "hi", "extra": deep},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize(
    "query",
    ["after=²", "after=١٢", "after=" + "9" * 5000, "after=99999999999999999999", "limit=0"],
)
def test_it_refuses_bad_numbers_in_queries(acme, setup, query):  # noqa: F811
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    response = agent.get(f"/api/v1/conversations/{cid}/messages/?{query}")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize("assignee", ["١", "²", "9" * 5000, 2**70])
def test_it_refuses_non_ascii_and_huge_ids(acme, setup, assignee):  # noqa: F811
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    response = agent.post(
        f"/api/v1/conversations/{cid}/assign/",
        {"assignee": assignee},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "invalid"


# --- the inbox pages read numbers from query strings and forms the same way ------------------


@pytest.mark.parametrize("query", ["pending=²", "pending=1,١٢", "pending=" + "9" * 5000, "after=²"])
def test_the_thread_poll_ignores_numbers_that_are_not_ascii(acme, setup, query):  # noqa: F811
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    response = agent.get(f"/inbox/c/{cid}/new/?{query}")
    assert response.status_code in (200, 204), response.content[:300]


@pytest.mark.parametrize("assignee", ["²", "١", "9" * 5000])
def test_the_assign_form_refuses_numbers_that_are_not_ascii(acme, setup, assignee):  # noqa: F811
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    response = agent.post(
        f"/inbox/c/{cid}/act/",
        {"action": "assign", "assignee": assignee},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code < 500, response.content[:300]
    with tenant_context(acme):
        assert Conversation.objects.get(pk=cid).assignee_id is None
