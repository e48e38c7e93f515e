"""One chat completion from an OpenAI-compatible provider, through ``parley.outbound``.

``chat_complete(provider, messages, max_tokens=...)`` POSTs
``{base_url}/chat/completions`` with the model, the messages and ``max_tokens``
(never ``tools``: the AI node cannot act), the key as a bearer token, the
provider's timeout, one retry of a transient failure and the destination's
circuit breaker. It returns the answer's text or raises :class:`AiProviderError`
with a stable ``code``:

=================  ==========================================================
``timeout``        no answer within the provider's timeout
``unavailable``    5xx, 408, a connection failure, or the circuit is open
``rate_limited``   429 from the provider, or our own rate limit for it
``auth``           401/403: the key was refused; the provider is marked
                   ``auth_failed`` (audited once) and the bots stop using it
``rejected``       another 4xx (a bad model name, too many tokens …)
``malformed``      a 2xx whose body is not a chat completion with text
``model_refusal``  the model answered with a refusal instead of content
``disabled``       the provider is switched off
=================  ==========================================================

Nothing here logs or keeps a message, an answer or the key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.views.decorators.debug import sensitive_variables

from connectors.ai.health import health_failed, health_ok
from connectors.models import AiProvider
from connectors.services import credential_use
from parley import outbound

ROLES = ("system", "developer", "user", "assistant")
MAX_MESSAGES = 100
MAX_MESSAGE_CHARS = 100_000
MAX_RESPONSE_BYTES = 1_000_000
RETRIES = 1
BACKOFF = 0.25


class AiProviderError(Exception):
    """The provider gave no usable answer; ``code`` is stable (see the module)."""

    def __init__(self, code: str, message: str, *, status: int | None = None):
        super().__init__(message)
        self.code, self.status = code, status


def completions_url(provider: AiProvider) -> str:
    return f"{provider.base_url.rstrip('/')}/chat/completions"


def _check_messages(messages: Sequence[dict]) -> list[dict[str, str]]:
    if not isinstance(messages, list | tuple) or not 0 < len(messages) <= MAX_MESSAGES:
        raise ValueError(f"messages is a list of 1 to {MAX_MESSAGES} items")
    out = []
    for item in messages:
        if not isinstance(item, dict) or item.get("role") not in ROLES:
            raise ValueError("each message has a role: system, developer, user or assistant")
        content = item.get("content")
        if not isinstance(content, str) or len(content) > MAX_MESSAGE_CHARS:
            raise ValueError("each message has text content")
        out.append({"role": item["role"], "content": content})
    return out


def parse_answer(body: bytes) -> str:
    """The first choice's text from a chat-completions body, or AiProviderError."""
    if len(body) > MAX_RESPONSE_BYTES:
        raise AiProviderError("malformed", "The answer is too large.")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AiProviderError("malformed", "The answer is not JSON.") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise AiProviderError("malformed", "The answer has no choices.")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise AiProviderError("malformed", "The answer's choice has no message.")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal.strip():
        raise AiProviderError("model_refusal", "The model refused to answer.")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise AiProviderError("malformed", "The answer's message has no text.")
    return content


def _classify(exc: outbound.OutboundError, last_error: str | None) -> AiProviderError:
    status = exc.status
    if isinstance(exc, outbound.RateLimited):
        return AiProviderError("rate_limited", "Our rate limit for the provider is spent.")
    if isinstance(exc, outbound.CircuitOpen):
        return AiProviderError("unavailable", "The provider is failing; not called for now.")
    if status in (401, 403):
        return AiProviderError(
            "auth", f"The provider refused the key (HTTP {status}).", status=status
        )
    if status == 429:
        return AiProviderError("rate_limited", "The provider asks us to slow down.", status=status)
    if status is not None and (status >= 500 or status == 408):
        return AiProviderError(
            "unavailable", f"The provider failed (HTTP {status}).", status=status
        )
    if status is not None:
        return AiProviderError(
            "rejected", f"The provider refused the request (HTTP {status}).", status=status
        )
    if last_error and "timeout" in last_error.lower():
        return AiProviderError("timeout", "The provider did not answer in time.")
    return AiProviderError(
        "unavailable", f"The provider cannot be reached ({last_error or 'refused'})."
    )


@sensitive_variables("api_key", "key")
def chat_complete(
    provider: AiProvider,
    messages: Sequence[dict],
    *,
    max_tokens: int | None = None,
    api_key: str | None = None,
) -> str:
    """The provider's answer to ``messages`` (``[{"role", "content"}, ...]``).

    ``api_key``: a key the caller already decrypted for this call (the AI node
    needs it for its output check too); otherwise it is decrypted here
    (``credential.used``, purpose ``ai-provider``).
    """
    if not provider.enabled:
        raise AiProviderError("disabled", "The provider is switched off.")
    body = {
        "model": provider.model,
        "messages": _check_messages(messages),
        "max_tokens": min(int(max_tokens or provider.max_tokens), provider.max_tokens),
    }
    key = api_key or credential_use(credential=provider.api_key, purpose="ai-provider")
    attempts: list[str | None] = []

    def on_attempt(*, attempt: int, status: int | None, error: str | None, elapsed_ms: float):
        attempts.append(error)

    try:
        response = outbound.request(
            "POST",
            completions_url(provider),
            json_body=body,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            timeout=float(provider.timeout_seconds),
            retries=RETRIES,
            backoff=BACKOFF,
            purpose="ai-provider",
            rate_key=f"ai-provider:{provider.pk}",
            on_attempt=on_attempt,
        )
    except outbound.OutboundError as exc:
        error = _classify(exc, attempts[-1] if attempts else None)
        if attempts:  # it went to the network: the answer says something about the provider
            health_failed(
                provider_id=provider.pk, code=error.code, auth_failed=error.code == "auth"
            )
        raise error from None
    try:
        answer = parse_answer(response.body)
    except AiProviderError as error:
        if error.code == "malformed":
            health_failed(provider_id=provider.pk, code=error.code)
        raise
    health_ok(provider_id=provider.pk)
    return answer
