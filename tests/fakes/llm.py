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
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.server import Answer, JsonServer, Recorded

__all__ = ["FakeLLM", "Recorded"]

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


@dataclass
class _Answer:
    status: int = 200
    body: Any = None  # str: the answer's text; dict/bytes: the raw body
    delay: float = 0.0


class FakeLLM(JsonServer):
    def __init__(self, *, key: str | None = None, default_answer: str = "Happy to help."):
        self.key = key
        self.default_answer = default_answer
        self._queue: deque[_Answer] = deque()
        self._compute: Callable[[Any], str] | None = None
        self._serial = 0
        super().__init__()

    # --- control -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

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

    def _answer(self, recorded: Recorded) -> Answer:
        status, body, delay = self._respond(recorded)
        return Answer(status, body, delay=delay)

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
