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
import threading
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from connectors.adapters.http import HttpReply, HttpTransportError

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


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class FakeGraph:
    def __init__(self, *, token: str | None = None, owners: Mapping[str, str] | None = None):
        self.token = token
        # Account id -> the access token that reaches it: ``GET /{version}/{id}``
        # answers ``{"id": id}`` for that token only (Meta's answer to a token
        # without access is error 100, "Unsupported get request").
        self.owners = dict(owners or {})
        self.requests: list[Recorded] = []
        self._answers: deque[tuple[int, Any, dict[str, str]]] = deque()
        self._lock = threading.Lock()
        self._ids = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # --- control -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Queue one answer (a JSON-able value or raw bytes) for the next request."""
        with self._lock:
            self._answers.append((status, body, dict(headers or {})))

    def fail(self, name: str) -> None:
        self.answer(*FAILURES[name])

    def start(self) -> FakeGraph:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeGraph:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the protocol --------------------------------------------------------------------------

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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorded = Recorded(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                with fake._lock:
                    fake.requests.append(recorded)
                status, body, headers = fake._respond(recorded)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            do_POST = do_GET = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet test output

        return Handler


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
