"""A local OpenAI-compatible chat-completions API for tests: a threaded HTTP server on
127.0.0.1 that answers ``POST /v1/chat/completions`` as OpenAI documents it and
records every request it received (the tests assert on what actually arrived).

    with FakeLLM(key="sk-test-…") as llm:
        provider.base_url = llm.base_url            # http://127.0.0.1:<port>/v1
        llm.reply("Our shop opens at 9.")          # the next answer's text
        llm.fail(500) / llm.fail(401)              # an error answer (OpenAI's error shape)
        llm.malformed()                            # a 200 that is not a chat completion
        llm.delay(2.0)                             # the next answer waits (timeouts)
        llm.requests[0].json["messages"]           # what Parley sent

With nothing queued it answers ``default_answer``; ``answer_with(fn)`` computes the
text from the request body (e.g. echo the system prompt back). Bodies are the
documented shapes (tests/fixtures/openai): a wrong or missing bearer key gets the
``invalid_api_key`` error with HTTP 401.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


COMPLETION = fixture("openai_chat_completions_response.json")
INVALID_KEY = fixture("openai_error_invalid_api_key.json")
ERRORS: dict[int, Any] = {
    401: INVALID_KEY,
    403: {
        "error": {
            "message": "You are not allowed to use this model.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_allowed",
        }
    },
    400: {
        "error": {
            "message": "Invalid model.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    },
    429: {
        "error": {
            "message": "Rate limit reached.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    },
    500: {
        "error": {
            "message": "The server had an error.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    },
    503: {
        "error": {
            "message": "The engine is overloaded.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    },
}
MALFORMED: dict[str, bytes | Any] = {
    "not-json": b"<html>oops</html>",
    "no-choices": {"id": "chatcmpl-x", "object": "chat.completion", "choices": []},
    "null-content": {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]},
    "wrong-type": {"choices": "Hello"},
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

    @property
    def text(self) -> str:
        """Everything the request carried, as one string (for "never sent" checks)."""
        return self.body.decode("utf-8", "replace") + " " + " ".join(self.headers.values())


@dataclass
class _Answer:
    status: int = 200
    body: Any = None  # str: the answer's text; dict/bytes: the raw body
    delay: float = 0.0


class FakeLLM:
    def __init__(self, *, key: str | None = None, default_answer: str = "Happy to help."):
        self.key = key
        self.default_answer = default_answer
        self.requests: list[Recorded] = []
        self._queue: deque[_Answer] = deque()
        self._compute: Callable[[Any], str] | None = None
        self._lock = threading.Lock()
        self._serial = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # --- control -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def reply(self, text: str, *, delay: float = 0.0) -> None:
        """Queue one successful answer whose message content is ``text``."""
        with self._lock:
            self._queue.append(_Answer(200, text, delay))

    def fail(self, status: int, *, delay: float = 0.0) -> None:
        """Queue one error answer in OpenAI's error shape."""
        with self._lock:
            self._queue.append(_Answer(status, ERRORS.get(status, ERRORS[500]), delay))

    def malformed(self, kind: str = "no-choices") -> None:
        with self._lock:
            self._queue.append(_Answer(200, MALFORMED[kind]))

    def delay(self, seconds: float, text: str | None = None) -> None:
        """Queue one answer that arrives after ``seconds``."""
        self.reply(self.default_answer if text is None else text, delay=seconds)

    def answer_with(self, compute: Callable[[Any], str] | None) -> None:
        """Answer every unqueued request with ``compute(request_json)``."""
        self._compute = compute

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def received(self) -> str:
        """Every recorded request as one string."""
        with self._lock:
            return "\n".join(r.text for r in self.requests)

    # --- the protocol --------------------------------------------------------------------------

    def _completion(self, text: str, model: str) -> dict:
        with self._lock:
            self._serial += 1
            serial = self._serial
        body = copy.deepcopy(COMPLETION)
        body["id"] = f"chatcmpl-FAKE{serial:08d}"
        body["created"] = int(time.time())
        body["model"] = model
        body["choices"][0]["message"]["content"] = text
        return body

    def _respond(self, recorded: Recorded) -> tuple[int, Any, float]:
        with self._lock:
            queued = self._queue.popleft() if self._queue else None
        if recorded.method != "POST" or not recorded.path.endswith("/chat/completions"):
            return (
                404,
                {
                    "error": {
                        "message": "Unknown path",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                0.0,
            )
        if self.key is not None and recorded.headers.get("authorization") != f"Bearer {self.key}":
            return 401, INVALID_KEY, 0.0
        try:
            request = recorded.json
        except ValueError:
            return 400, ERRORS[400], 0.0
        model = str(request.get("model", "")) if isinstance(request, dict) else ""
        if queued is None:
            text = self._compute(request) if self._compute else self.default_answer
            return 200, self._completion(text, model), 0.0
        if queued.status == 200 and isinstance(queued.body, str):
            return 200, self._completion(queued.body, model), queued.delay
        return queued.status, queued.body, queued.delay

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
                status, body, delay = fake._respond(recorded)
                if delay:
                    time.sleep(delay)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_POST = do_GET = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # quiet test output

        return Handler
