"""Inbound webhook of API channels: ``POST /webhooks/api/<public_id>/`` on the tenant's host.

No session, no JWT, no CSRF token: the ``X-Parley-Signature`` header (HMAC-SHA256
over the raw body under the channel's signing secret, see ``connectors.channels``)
is the authentication. Every answer is JSON with a stable ``code``; a refusal on a
known channel is audited (``channel.webhook_refused``, reason only, never the
payload). Checks run cheapest first: channel, rate, size, content type, then the
signature over the raw bytes, then the JSON.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from accounts.throttles import hit
from audit.models import Outcome
from audit.services import record
from connectors import channels
from connectors.services import credential_use
from parley import validation
from parley.keyring.providers import KeyringError

MAX_BODY = 256 * 1024
DEFAULT_RATE = "600/min"  # per channel; PARLEY_RATE_CHANNEL_WEBHOOK overrides


def _answer(status: int, code: str, detail: str, **extra) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail, **extra}, status=status)


def _refuse(request, channel, status: int, code: str, detail: str, **extra) -> JsonResponse:
    record(
        "channel.webhook_refused",
        outcome=Outcome.DENIED,
        target_type="channel",
        target_id=channel.pk,
        details={"reason": code, "public_id": channel.public_id, "status": status},
        request=request,
    )
    return _answer(status, code, detail, **extra)


@csrf_exempt
@never_cache
@sensitive_variables("secret")
def api_channel(request, public_id: str):
    if request.method != "POST":
        response = _answer(405, "method_not_allowed", "POST a signed JSON event.")
        response["Allow"] = "POST"
        return response
    channel = channels.channel_for_webhook(public_id=public_id)
    if channel is None:
        return _answer(404, "unknown_channel", "No such channel (or it is disabled).")

    wait = hit(
        scope="channel-webhook",
        ident=str(channel.pk),
        rate=getattr(settings, "PARLEY_RATE_CHANNEL_WEBHOOK", DEFAULT_RATE),
    )
    if wait is not None:
        response = _answer(429, "throttled", f"Too many events; retry in {wait} seconds.")
        response["Retry-After"] = str(wait)
        return response

    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY:
        return _refuse(
            request, channel, 413, "payload_too_large", f"Events are at most {MAX_BODY} bytes."
        )
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return _refuse(
            request, channel, 415, "unsupported_media_type", "Send Content-Type: application/json."
        )
    raw = request.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return _refuse(
            request, channel, 413, "payload_too_large", f"Events are at most {MAX_BODY} bytes."
        )

    header = request.headers.get(channels.SIGNATURE_HEADER, "")
    if not header:
        # Nothing to check: refuse without decrypting the secret.
        return _refuse(
            request,
            channel,
            401,
            "signature_missing",
            f"The {channels.SIGNATURE_HEADER} header is missing.",
        )
    try:
        secret = credential_use(
            credential=channel.signing_credential,
            purpose="channel.verify",
            actor=channels.channel_actor(channel),
        )
    except KeyringError:
        return _answer(
            503, "channel_unavailable", "This channel cannot verify events right now; retry later."
        )
    try:
        channels.signature_verify(secret=secret, body=raw, header=header)
    except channels.SignatureError as exc:
        return _refuse(request, channel, 401, exc.code, exc.detail)
    finally:
        del secret

    try:
        payload = validation.json_loads(raw)
    except validation.JSONSyntaxError:
        return _refuse(request, channel, 400, "invalid_json", "The body is not valid JSON.")
    except ValidationError as exc:
        # NUL, lone surrogates, numbers past 64 bits, deep nesting: refused
        # before any field is read, for every event type alike.
        return _refuse(
            request, channel, 400, "invalid", "The event is invalid.", errors=exc.message_dict
        )
    if not isinstance(payload, dict):
        return _refuse(request, channel, 400, "invalid_json", "The body is a JSON object.")

    kind = payload.get("type")
    try:
        if kind == "message":
            message, created = channels.inbound_message(channel=channel, payload=payload)
            return JsonResponse({"ok": True, "message_id": message.pk, "duplicate": not created})
        if kind == "status":
            message, changed = channels.inbound_status(channel=channel, payload=payload)
            return JsonResponse(
                {
                    "ok": True,
                    "message_id": message.pk,
                    "duplicate": not changed,
                    "delivery": message.delivery,
                }
            )
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        return _refuse(request, channel, 400, "invalid", "The event is invalid.", errors=errors)
    except Http404:
        return _answer(404, "unknown_message", "No such outbound message on this channel.")
    return _refuse(request, channel, 400, "unknown_type", 'The "type" is "message" or "status".')
