"""Sending through the Graph API: request shapes against Meta's documented examples,
and every error class, against a local Graph API (tests/fakes/graph.py)."""

from __future__ import annotations

import json
import logging
import socket

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.adapters.base import (
    Button,
    DeliveryError,
    ListRow,
    ListSection,
    MediaLink,
    OutboundMessage,
    Template,
)
from connectors.adapters.http import outbound_http
from connectors.meta import INSTAGRAM, MESSENGER, WHATSAPP
from tests.connectors.meta.support import TOKEN, doc
from tests.fakes.graph import FakeGraph, plain_http

PHONE_NUMBER_ID = "106540352242922"
SECRETS = {"access_token": TOKEN, "app_secret": "s", "verify_token": "v"}


def wa_settings(graph: FakeGraph, **extra: str) -> dict[str, str]:
    return {"graph_base_url": graph.base_url, "phone_number_id": PHONE_NUMBER_ID, **extra}


def send_failure(adapter, graph, settings, message=None, http=plain_http) -> DeliveryError:
    message = message or OutboundMessage(recipient_id="16505551234", text="Hello")
    with pytest.raises(DeliveryError) as caught:
        adapter.send(message, settings, SECRETS, http)
    return caught.value


# --- WhatsApp request shapes ---------------------------------------------------------------------


def test_whatsapp_text_is_the_documented_request(graph):
    expected = doc("wa_send_text_request_docs.json")
    expected["text"]["preview_url"] = False  # Parley never asks Meta to fetch links
    message = OutboundMessage(recipient_id=expected["to"], text=expected["text"]["body"])
    result = WHATSAPP.send(message, wa_settings(graph), SECRETS, plain_http)
    (request,) = graph.requests
    assert request.method == "POST"
    assert request.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == expected
    assert result.external_id.startswith("wamid.FAKE")
    assert result.recipient_id == "16505551234"


def test_whatsapp_text_matches_the_openapi_example_too(graph):
    expected = doc("wa_send_text_request_openapi.json")
    expected["to"] = "16505551234"
    message = OutboundMessage(recipient_id="16505551234", text=expected["text"]["body"])
    WHATSAPP.send(message, wa_settings(graph), SECRETS, plain_http)
    assert graph.requests[0].json == expected


def test_whatsapp_reply_buttons_are_the_openapi_request(graph):
    expected = doc("wa_send_interactive_button_request_openapi.json")
    expected["to"] = "+16505551234"
    buttons = tuple(
        Button(id=b["reply"]["id"], title=b["reply"]["title"])
        for b in expected["interactive"]["action"]["buttons"]
    )
    message = OutboundMessage(
        recipient_id="+16505551234", text=expected["interactive"]["body"]["text"], buttons=buttons
    )
    WHATSAPP.send(message, wa_settings(graph), SECRETS, plain_http)
    assert graph.requests[0].json == expected


def test_whatsapp_reply_buttons_with_a_footer_are_the_docs_request(graph):
    expected = doc("wa_send_interactive_button_request_docs.json")
    del expected["interactive"]["header"]  # an image header: Parley sends text headers only
    interactive = expected["interactive"]
    message = OutboundMessage(
        recipient_id=expected["to"],
        text=interactive["body"]["text"],
        footer=interactive["footer"]["text"],
        buttons=(Button("change-button", "Change"), Button("cancel-button", "Cancel")),
    )
    WHATSAPP.send(message, wa_settings(graph), SECRETS, plain_http)
    assert graph.requests[0].json == expected


def test_whatsapp_list_request(graph):
    message = OutboundMessage(
        recipient_id="16505551234",
        text="Which shipping option do you prefer?",
        header="Choose Shipping Option",
        list_button="Shipping Options",
        list_sections=(
            ListSection(
                title="I want it ASAP!",
                rows=(
                    ListRow("priority_express", "Priority Mail Express", "Next Day to 2 Days"),
                    ListRow("priority_mail", "Priority Mail", "1–3 Days"),
                ),
            ),
            ListSection(title="I can wait", rows=(ListRow("ground", "Ground Advantage"),)),
        ),
    )
    WHATSAPP.send(message, wa_settings(graph), SECRETS, plain_http)
    body = graph.requests[0].json
    assert body["type"] == "interactive"
    assert body["interactive"] == {
        "type": "list",
        "header": {"type": "text", "text": "Choose Shipping Option"},
        "body": {"text": "Which shipping option do you prefer?"},
        "action": {
            "button": "Shipping Options",
            "sections": [
                {
                    "title": "I want it ASAP!",
                    "rows": [
                        {
                            "id": "priority_express",
                            "title": "Priority Mail Express",
                            "description": "Next Day to 2 Days",
                        },
                        {
                            "id": "priority_mail",
                            "title": "Priority Mail",
                            "description": "1–3 Days",
                        },
                    ],
                },
                {"title": "I can wait", "rows": [{"id": "ground", "title": "Ground Advantage"}]},
            ],
        },
    }


def test_whatsapp_template_request(graph):
    components = ({"type": "body", "parameters": [{"type": "text", "text": "Pablo"}]},)
    message = OutboundMessage(
        recipient_id="16505551234",
        template=Template(name="appointment_reminder", language="en_US", components=components),
    )
    WHATSAPP.send(message, wa_settings(graph), SECRETS, plain_http)
    body = graph.requests[0].json
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "appointment_reminder",
        "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Pablo"}]}],
    }


def test_whatsapp_media_and_reply_context(graph):
    image = OutboundMessage(
        recipient_id="16505551234",
        media=MediaLink(type="image", url="https://shop.example/p.jpg", caption="Yours"),
        reply_to="wamid.ABC",
    )
    document = OutboundMessage(
        recipient_id="16505551234",
        media=MediaLink(type="document", id="1003383421387256", filename="invoice.pdf"),
    )
    WHATSAPP.send(image, wa_settings(graph), SECRETS, plain_http)
    WHATSAPP.send(document, wa_settings(graph), SECRETS, plain_http)
    first, second = (r.json for r in graph.requests)
    assert first["context"] == {"message_id": "wamid.ABC"}
    assert (first["type"], first["image"]) == (
        "image",
        {"link": "https://shop.example/p.jpg", "caption": "Yours"},
    )
    assert (second["type"], second["document"]) == (
        "document",
        {"id": "1003383421387256", "filename": "invoice.pdf"},
    )


def test_the_api_version_and_base_url_are_configurable(graph):
    message = OutboundMessage(recipient_id="16505551234", text="Hi")
    WHATSAPP.send(
        message,
        wa_settings(graph, api_version="v23.0", graph_base_url=graph.base_url + "/"),
        SECRETS,
        plain_http,
    )
    assert graph.requests[0].path == f"/v23.0/{PHONE_NUMBER_ID}/messages"


@pytest.mark.parametrize(
    "message",
    [
        OutboundMessage(recipient_id="1", text="Pick", buttons=(Button("a", "x" * 21),)),
        OutboundMessage(recipient_id="1", text="x" * 4097),
        OutboundMessage(recipient_id="1", text="x" * 1025, buttons=(Button("a", "A"),)),
        OutboundMessage(recipient_id="1", text="Hi", footer="no buttons"),
        OutboundMessage(
            recipient_id="1",
            media=MediaLink(type="audio", url="https://a.example/a.ogg", caption="c"),
        ),
        OutboundMessage(
            recipient_id="1", media=MediaLink(type="hologram", url="https://a.example/x")
        ),
    ],
)
def test_whatsapp_refuses_what_it_cannot_carry_before_calling(graph, message):
    error = send_failure(WHATSAPP, graph, wa_settings(graph), message)
    assert (error.code, error.permanent) == ("content_invalid", True)
    assert graph.requests == []


# --- Messenger and Instagram ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "settings", "path"),
    [
        (MESSENGER, {}, "/v21.0/me/messages"),
        (MESSENGER, {"page_id": "1234567890"}, "/v21.0/1234567890/messages"),
        (INSTAGRAM, {}, "/v21.0/me/messages"),
        (INSTAGRAM, {"account_id": "17841400000000000"}, "/v21.0/17841400000000000/messages"),
    ],
    ids=["messenger-me", "messenger-page", "instagram-me", "instagram-account"],
)
def test_send_api_text_with_quick_replies(graph, adapter, settings, path):
    message = OutboundMessage(
        recipient_id="<PSID>",
        text="Which color?",
        buttons=(Button("RED", "Red"), Button("BLUE", "Blue")),
    )
    result = adapter.send(
        message, {"graph_base_url": graph.base_url, **settings}, SECRETS, plain_http
    )
    (request,) = graph.requests
    assert request.path == path
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "access_token" not in request.path  # the token never travels in the URL
    assert request.json == {
        "recipient": {"id": "<PSID>"},
        "messaging_type": "RESPONSE",
        "message": {
            "text": "Which color?",
            "quick_replies": [
                {"content_type": "text", "title": "Red", "payload": "RED"},
                {"content_type": "text", "title": "Blue", "payload": "BLUE"},
            ],
        },
    }
    assert result.external_id.startswith("m_FAKE") and result.recipient_id == "<PSID>"


def test_messenger_list_rows_become_quick_replies(graph):
    message = OutboundMessage(
        recipient_id="<PSID>",
        text="Shipping?",
        list_button="Options",
        list_sections=(
            ListSection("", (ListRow("fast", "Fast", "1 day"), ListRow("slow", "Slow"))),
        ),
    )
    MESSENGER.send(message, {"graph_base_url": graph.base_url}, SECRETS, plain_http)
    assert graph.requests[0].json["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Fast", "payload": "fast"},
        {"content_type": "text", "title": "Slow", "payload": "slow"},
    ]


def test_messenger_attachment_request(graph):
    message = OutboundMessage(
        recipient_id="<PSID>", media=MediaLink(type="document", url="https://shop.example/i.pdf")
    )
    MESSENGER.send(message, {"graph_base_url": graph.base_url}, SECRETS, plain_http)
    assert graph.requests[0].json["message"] == {
        "attachment": {
            "type": "file",
            "payload": {"url": "https://shop.example/i.pdf", "is_reusable": False},
        }
    }


@pytest.mark.parametrize(
    ("adapter", "message", "code"),
    [
        (
            MESSENGER,
            OutboundMessage(recipient_id="p", template=Template("hello_world", "en_US")),
            "content_unsupported",
        ),
        (
            MESSENGER,
            OutboundMessage(recipient_id="p", text="Hi", header="H", buttons=(Button("a", "A"),)),
            "content_unsupported",
        ),
        (
            MESSENGER,
            OutboundMessage(
                recipient_id="p", media=MediaLink(type="image", url="https://a/x", caption="c")
            ),
            "content_unsupported",
        ),
        (MESSENGER, OutboundMessage(recipient_id="p", text="x" * 2001), "content_invalid"),
        (INSTAGRAM, OutboundMessage(recipient_id="p", text="x" * 1001), "content_invalid"),
        (
            INSTAGRAM,
            OutboundMessage(
                recipient_id="p", media=MediaLink(type="document", url="https://a/x.pdf")
            ),
            "content_invalid",
        ),
    ],
)
def test_send_api_refuses_what_it_cannot_carry_before_calling(graph, adapter, message, code):
    error = send_failure(adapter, graph, {"graph_base_url": graph.base_url}, message)
    assert (error.code, error.permanent) == (code, True)
    assert graph.requests == []


# --- error classes -------------------------------------------------------------------------------

CLASSES = {
    # name: (code, permanent, auth_failed, outside_window, vendor_code)
    "rate_limit": ("rate_limited", False, False, False, 130429),
    "rate_limit_429": ("rate_limited", False, False, False, 130429),
    "outside_window": ("outside_window", True, False, True, 131047),
    "expired_token": ("auth_failed", True, True, False, 190),
    "invalid_token": ("auth_failed", True, True, False, 190),
    "permission": ("auth_failed", True, True, False, 200),
    "server_error": ("server_error", False, False, False, 131000),
    "bare_500": ("server_error", False, False, False, None),
    "bad_request": ("rejected", True, False, False, 100),
}


@pytest.mark.parametrize("failure", sorted(CLASSES))
@pytest.mark.parametrize("adapter", [WHATSAPP, MESSENGER], ids=lambda a: a.kind)
def test_each_graph_error_maps_to_its_class(graph, adapter, failure):
    graph.fail(failure)
    error = send_failure(adapter, graph, wa_settings(graph))
    code, permanent, auth_failed, outside_window, vendor_code = CLASSES[failure]
    assert error.code == code
    assert error.permanent is permanent
    assert error.auth_failed is auth_failed
    assert error.outside_window is outside_window
    assert error.vendor_code == vendor_code
    # Neither the token nor anything of Meta's message text reaches the error.
    for text in (str(error), repr(error)):
        assert TOKEN not in text
        assert "Session has expired" not in text and "Rate limit hit" not in text


def test_a_rate_limit_says_when_to_retry(graph):
    graph.fail("rate_limit_429")
    assert send_failure(WHATSAPP, graph, wa_settings(graph)).retry_after == 7.0
    graph.fail("rate_limit")
    assert send_failure(WHATSAPP, graph, wa_settings(graph)).retry_after == 60.0


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, 4, "rate_limited"),
        (400, 17, "rate_limited"),
        (400, 613, "rate_limited"),
        (400, 80007, "rate_limited"),
        (400, 131056, "rate_limited"),
        (400, 102, "auth_failed"),
        (400, 10, "auth_failed"),
        (400, 299, "auth_failed"),
        (503, 131016, "server_error"),
        (400, 2, "server_error"),
        (400, 131026, "rejected"),
        (400, 100, "rejected"),
        (404, None, "rejected"),
    ],
)
def test_graph_codes_map_to_classes(graph, status, code, expected):
    body = {"error": {"message": "m", "type": "OAuthException", "code": code}} if code else b""
    graph.answer(status, body)
    assert send_failure(WHATSAPP, graph, wa_settings(graph)).code == expected


def test_a_refused_token_is_an_auth_failure(graph):
    with pytest.raises(DeliveryError) as caught:
        WHATSAPP.send(
            OutboundMessage(recipient_id="1", text="Hi"),
            wa_settings(graph),
            {"access_token": "EAAG-revoked"},
            plain_http,
        )
    error = caught.value
    assert (error.code, error.auth_failed, error.permanent) == ("auth_failed", True, True)
    assert graph.requests[0].headers["authorization"] == "Bearer EAAG-revoked"


@pytest.mark.parametrize(
    ("answer", "code"),
    [((200, b"not json"), "response_invalid"), ((200, {"messages": []}), "response_invalid")],
)
def test_an_unreadable_success_is_permanent(graph, answer, code):
    # Most likely sent: retrying would send twice.
    graph.answer(*answer)
    error = send_failure(WHATSAPP, graph, wa_settings(graph))
    assert (error.code, error.permanent) == (code, True)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("http", [plain_http, outbound_http], ids=["plain", "outbound"])
@pytest.mark.usefixtures("private_allowed")
def test_an_unreachable_graph_is_transient(http):
    settings = {"graph_base_url": closed_port_url(), "phone_number_id": PHONE_NUMBER_ID}
    with pytest.raises(DeliveryError) as caught:
        WHATSAPP.send(OutboundMessage(recipient_id="1", text="Hi"), settings, SECRETS, http)
    assert (caught.value.code, caught.value.permanent) == ("network_error", False)


@pytest.mark.parametrize(
    ("settings", "secrets", "code", "auth_failed"),
    [
        ({"phone_number_id": "../../debug_token"}, SECRETS, "settings_invalid", False),
        ({}, SECRETS, "settings_invalid", False),
        (
            {"phone_number_id": PHONE_NUMBER_ID, "api_version": "21"},
            SECRETS,
            "settings_invalid",
            False,
        ),
        (
            {"phone_number_id": PHONE_NUMBER_ID, "graph_base_url": "http://u:p@graph.example"},
            SECRETS,
            "settings_invalid",
            False,
        ),
        (
            {"phone_number_id": PHONE_NUMBER_ID, "graph_base_url": "ftp://graph.example"},
            SECRETS,
            "settings_invalid",
            False,
        ),
        ({"phone_number_id": PHONE_NUMBER_ID}, {}, "credentials_missing", True),
        (
            {"phone_number_id": PHONE_NUMBER_ID},
            {"access_token": "EAAG\r\nX-Injected: 1"},
            "credentials_invalid",
            True,
        ),
    ],
)
def test_bad_settings_or_credentials_fail_before_calling(
    graph, settings, secrets, code, auth_failed
):
    settings = {"graph_base_url": graph.base_url, **settings}
    with pytest.raises(DeliveryError) as caught:
        WHATSAPP.send(OutboundMessage(recipient_id="1", text="Hi"), settings, secrets, plain_http)
    assert (caught.value.code, caught.value.permanent, caught.value.auth_failed) == (
        code,
        True,
        auth_failed,
    )
    assert "EAAG" not in str(caught.value)
    assert graph.requests == []


# --- the production path: parley.outbound --------------------------------------------------------


@pytest.fixture
def private_allowed():
    """The local Graph API listens on 127.0.0.1, which parley.outbound's guard refuses
    unless PARLEY_OUTBOUND_ALLOW_PRIVATE (on outside production; said here, not assumed)."""
    with override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=True):
        yield


@pytest.mark.usefixtures("private_allowed")
def test_outbound_http_sends_and_logs_no_secret(graph, caplog):
    caplog.set_level(logging.DEBUG)
    result = WHATSAPP.send(
        OutboundMessage(recipient_id="16505551234", text="Secret body"),
        wa_settings(graph),
        SECRETS,
        outbound_http,
    )
    assert result.external_id.startswith("wamid.FAKE")
    (request,) = graph.requests
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json["text"]["body"] == "Secret body"
    assert "whatsapp.send" in caplog.text  # the attempt is recorded …
    assert (
        TOKEN not in caplog.text and "Secret body" not in caplog.text
    )  # … without secrets or bodies


@pytest.mark.parametrize(
    ("failure", "code", "permanent", "auth_failed"),
    [
        ("expired_token", "auth_failed", True, True),
        ("permission", "auth_failed", True, True),
        ("server_error", "server_error", False, False),
        ("rate_limit_429", "rate_limited", False, False),
        ("bad_request", "rejected", True, False),
    ],
)
@pytest.mark.usefixtures("private_allowed")
def test_outbound_http_classes_by_status(graph, caplog, failure, code, permanent, auth_failed):
    graph.fail(failure)
    error = send_failure(WHATSAPP, graph, wa_settings(graph), http=outbound_http)
    assert (error.code, error.permanent, error.auth_failed) == (code, permanent, auth_failed)
    assert TOKEN not in caplog.text


@pytest.mark.usefixtures("private_allowed")
def test_outbound_http_sees_the_24_hour_window(graph):
    graph.fail("outside_window")
    error = send_failure(WHATSAPP, graph, wa_settings(graph), http=outbound_http)
    assert error.outside_window and error.code == "outside_window"


@pytest.mark.usefixtures("private_allowed")
def test_outbound_http_sees_a_rate_limit_answered_with_400(graph):
    graph.fail("rate_limit")
    error = send_failure(WHATSAPP, graph, wa_settings(graph), http=outbound_http)
    assert error.code == "rate_limited" and not error.permanent


def test_a_broken_transport_is_a_permanent_delivery_error(graph):
    def broken(method, url, **kwargs):
        raise RuntimeError("a bug in the transport, with " + kwargs["headers"]["Authorization"])

    error = send_failure(WHATSAPP, graph, wa_settings(graph), http=broken)
    assert (error.code, error.permanent) == ("transport_failed", True)
    assert TOKEN not in str(error)


# --- any answer ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_graph():
    with FakeGraph() as server:
        yield server


@pytest.mark.parametrize("adapter", [WHATSAPP, MESSENGER], ids=lambda a: a.kind)
@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    status=st.integers(200, 599),
    body=st.binary(max_size=300)
    | st.builds(
        lambda code, sub, retry: json.dumps(
            {"error": {"code": code, "error_subcode": sub, "type": "OAuthException"}}
        ).encode(),
        st.one_of(st.integers(), st.text(max_size=8), st.none()),
        st.one_of(st.integers(), st.none()),
        st.none(),
    ),
    retry_after=st.one_of(
        st.none(), st.text(alphabet="0123456789 ,:-GMTabcdefghijklmnopqrstuvwxyz", max_size=40)
    ),
)
def test_any_answer_is_a_result_or_a_delivery_error(
    shared_graph, adapter, status, body, retry_after
):
    headers = {"Retry-After": retry_after.strip() or "x"} if retry_after is not None else {}
    shared_graph.answer(status, body, headers)
    message = OutboundMessage(recipient_id="16505551234", text="Hi")
    settings_ = {"graph_base_url": shared_graph.base_url, "phone_number_id": PHONE_NUMBER_ID}
    try:
        result = adapter.send(message, settings_, SECRETS, plain_http)
    except DeliveryError as error:
        assert error.code and TOKEN not in str(error)
        assert error.retry_after is None or 0 <= error.retry_after <= 24 * 3600
        assert not (200 <= status < 300) or error.code == "response_invalid"
    else:
        assert 200 <= status < 300 and result.external_id


@pytest.mark.parametrize(
    ("settings_", "secrets"),
    [
        ({"phone_number_id": None}, SECRETS),
        ({"phone_number_id": 106540352242922}, SECRETS),
        ({"phone_number_id": PHONE_NUMBER_ID, "api_version": 21.0}, SECRETS),
        ({"phone_number_id": PHONE_NUMBER_ID, "graph_base_url": ["http://127.0.0.1"]}, SECRETS),
        ({"phone_number_id": PHONE_NUMBER_ID, "graph_base_url": "http://127.0.0.1:99999"}, SECRETS),
        ({"phone_number_id": PHONE_NUMBER_ID, "graph_base_url": "http://"}, SECRETS),
        (
            {"phone_number_id": PHONE_NUMBER_ID, "graph_base_url": "http://127.0.0.1:1"},
            {"access_token": 12345},
        ),
        (
            {"phone_number_id": PHONE_NUMBER_ID, "graph_base_url": "http://127.0.0.1:1"},
            {"access_token": "t\u00e9"},
        ),
    ],
)
def test_odd_settings_and_secrets_are_delivery_errors(settings_, secrets):
    # 127.0.0.1:1 unless the base URL is the odd value: nothing may leave the machine.
    settings_ = {"graph_base_url": "http://127.0.0.1:1", **settings_}
    with pytest.raises(DeliveryError) as caught:
        WHATSAPP.send(OutboundMessage(recipient_id="1", text="Hi"), settings_, secrets, plain_http)
    assert caught.value.permanent
    assert caught.value.code in ("settings_invalid", "credentials_invalid")


@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=False)
def test_the_outbound_guard_refuses_a_private_graph_base_url(graph):
    # A graph_base_url pointing into the platform's network is refused for good,
    # before any byte leaves (production's setting).
    error = send_failure(WHATSAPP, graph, wa_settings(graph), http=outbound_http)
    assert (error.code, error.permanent) == ("destination_refused", True)
    assert graph.requests == []


@pytest.mark.parametrize(
    ("adapter", "subcode"),
    [(MESSENGER, 2018278), (MESSENGER, 2018065), (INSTAGRAM, 2534022)],
    ids=["messenger", "messenger-old", "instagram"],
)
def test_the_send_api_window_error_is_outside_window_not_auth(graph, adapter, subcode):
    # Messenger and Instagram report the 24-hour window as code 10 (a permission code) with a subcode.
    graph.answer(
        400,
        {
            "error": {
                "message": "(#10) This message is sent outside of allowed window.",
                "type": "OAuthException",
                "code": 10,
                "error_subcode": subcode,
            }
        },
    )
    error = send_failure(adapter, graph, {"graph_base_url": graph.base_url})
    assert (error.code, error.permanent, error.outside_window, error.auth_failed) == (
        "outside_window",
        True,
        True,
        False,
    )
    assert not adapter.TEMPLATES  # so the agent is offered no template (connectors.delivery)
