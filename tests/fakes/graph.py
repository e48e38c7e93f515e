"""A local Meta Graph API for tests: a threaded HTTP server on 127.0.0.1 that
answers the Send endpoints as Meta does and records every request.

    with FakeGraph(token="EAAB-test") as graph:
        adapter.send(message, {"graph_base_url": graph.base_url, ...}, secrets, http)
        graph.requests[0].json          # the body Parley sent
        graph.fail("rate_limit")        # the next answer is Meta's 130429

Answers (bodies from tests/fixtures/meta, the documented shapes):

- success: WhatsApp's ``{"messaging_product", "contacts", "messages": [{"id"}]}``
  for a body with ``messaging_product``, else the Send API's
  ``{"recipient_id", "message_id"}``; ids are fresh per request;
- a request without ``Authorization: Bearer <token>`` (when ``token`` is set)
  gets Meta's 190 "Invalid OAuth access token", HTTP 401;
- ``fail(name)`` queues one of :data:`FAILURES` (HTTP status as in Meta's
  WhatsApp error-code table), ``answer(...)`` queues anything.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connectors.adapters.http import HttpReply, HttpTransportError
from tests.fakes.server import Answer, JsonServer, Recorded

__all__ = ["FAILURES", "FakeGraph", "Recorded", "fixture", "plain_http"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "meta"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _inner_131047() -> dict[str, Any]:
    # Meta publishes 131047 only as a webhook errors[] item; the synchronous
    # answer wraps the same fields in the Graph envelope.
    item = fixture("wa_error_131047_reengagement_ITEM_pywa.json")
    return {"error": {**item, "type": "OAuthException", "fbtrace_id": "AbCdEf131047"}}


FAILURES: dict[str, tuple[int, Any, dict[str, str]]] = {
    "rate_limit": (400, fixture("graph_error_130429_rate_limit.json"), {}),
    "rate_limit_429": (429, fixture("graph_error_130429_rate_limit.json"), {"Retry-After": "7"}),
    "outside_window": (400, _inner_131047(), {}),
    "expired_token": (401, {"error": fixture("graph_error_190_expired_token_INNER_pywa.json")}, {}),
    "invalid_token": (401, fixture("graph_error_190_invalid_oauth_openapi.json"), {}),
    "permission": (
        403,
        {"error": {"message": "(#200) Permissions error", "type": "OAuthException", "code": 200}},
        {},
    ),
    "server_error": (
        500,
        {"error": {"message": "Something went wrong", "type": "OAuthException", "code": 131000}},
        {},
    ),
    # What Meta answers a token that does not reach the object it names.
    "unsupported_get": (
        400,
        {
            "error": {
                "message": "Unsupported get request. Object with ID does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                "type": "GraphMethodException",
                "code": 100,
                "error_subcode": 33,
            }
        },
        {},
    ),
    "bare_500": (500, b"<html>Internal error</html>", {}),
    "bad_request": (
        400,
        {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100}},
        {},
    ),
}


class FakeGraph(JsonServer):
    content_type = "application/json; charset=UTF-8"

    def __init__(self, *, token: str | None = None, owners: Mapping[str, str] | None = None):
        self.token = token
        # Account id -> the access token that reaches it: ``GET /{version}/{id}``
        # answers ``{"id": id}`` for that token only (Meta's answer to a token
        # without access is error 100, "Unsupported get request").
        self.owners = dict(owners or {})
        self._answers: deque[tuple[int, Any, dict[str, str]]] = deque()
        self._ids = 0
        super().__init__()

    # --- control -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.origin

    def answer(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Queue one answer (a JSON-able value or raw bytes) for the next request."""
        with self._lock:
            self._answers.append((status, body, dict(headers or {})))

    def fail(self, name: str) -> None:
        self.answer(*FAILURES[name])

    # --- the protocol --------------------------------------------------------------------------

    def _answer(self, recorded: Recorded) -> Answer:
        status, body, headers = self._respond(recorded)
        return Answer(status, body, headers)

    def _respond(self, recorded: Recorded) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            if self._answers:
                return self._answers.popleft()
            self._ids += 1
            serial = self._ids
        if (
            self.token is not None
            and recorded.headers.get("authorization") != f"Bearer {self.token}"
        ):
            return FAILURES["invalid_token"]
        if recorded.method == "GET" and self.owners:
            account = recorded.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            token = recorded.headers.get("authorization", "").removeprefix("Bearer ")
            if account in self.owners and self.owners[account] == token:
                return 200, {"id": account}, {}
            return FAILURES["unsupported_get"]
        if recorded.method != "POST" or not recorded.path.endswith("/messages"):
            return (
                404,
                {"error": {"message": "Unknown path", "type": "GraphMethodException", "code": 100}},
                {},
            )
        try:
            body = recorded.json
        except ValueError:
            return FAILURES["bad_request"]
        if isinstance(body, dict) and body.get("messaging_product") == "whatsapp":
            answer = fixture("wa_send_success_response.json")
            to = str(body.get("to", ""))
            answer["contacts"] = [{"input": to, "wa_id": to.lstrip("+")}]
            answer["messages"] = [{"id": f"wamid.FAKE{serial:08d}"}]
            return 200, answer, {}
        recipient = (body.get("recipient") or {}).get("id", "") if isinstance(body, dict) else ""
        return 200, {"recipient_id": recipient, "message_id": f"m_FAKE{serial:08d}"}, {}


def plain_http(
    method: str,
    url: str,
    *,
    json_body: Any,
    headers: Mapping[str, str],
    timeout: float,
    purpose: str,
) -> HttpReply:
    """An ``HttpCall`` over plain urllib that keeps error bodies and headers: what
    ``connectors.adapters.http.outbound_http`` returns once ``parley.outbound``
    keeps them (see that module). Tests of the adapters' Graph error classes use
    it against :class:`FakeGraph`; the production path has its own tests."""
    data = json.dumps(json_body, separators=(",", ":")).encode()
    request = urllib.request.Request(  # noqa: S310 - tests only, 127.0.0.1
        url, data=data, method=method, headers={**headers, "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return HttpReply(
                status=response.status,
                body=response.read(),
                headers={k.lower(): v for k, v in response.headers.items()},
            )
    except urllib.error.HTTPError as exc:
        return HttpReply(
            status=exc.code, body=exc.read(), headers={k.lower(): v for k, v in exc.headers.items()}
        )
    except (urllib.error.URLError, OSError) as exc:
        raise HttpTransportError(type(exc).__name__) from None
