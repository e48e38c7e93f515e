"""Inbound webhooks of every channel kind: ``/webhooks/<kind>/<public_id>/`` on the tenant's host.

No session, no JWT, no CSRF token: the kind's signature over the raw body (its
adapter's ``verify``) is the authentication. Every answer is JSON with a stable
``code``; a refusal on a known channel is audited (``channel.webhook_refused``,
reason only, never the payload). Checks run cheapest first: channel, rate,
size, content type, signature header present, then the signature over the raw
bytes, then the parse (pure, bounded). Only then is the raw body stored
(``connectors.inbound``) and processing enqueued after commit.

Nothing before the store needs Redis: the per-channel rate limit fails open
when Redis is unreachable (the event is signed and bounded, and refusing it
would lose a customer's message the sender may not retry), so a signed event
is kept while the broker is down and the relay enqueues it later.
"""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from accounts.throttles import hit_leased
from audit.models import Outcome
from audit.services import record
from connectors import channels, inbound
from connectors.adapters import registry
from connectors.adapters.base import PayloadInvalid
from connectors.tasks import inbound_drain_publish, inbound_drain_request
from parley import faults
from parley.keyring.providers import KeyringError
from parley.middleware import machine_endpoint

logger = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
DEFAULT_RATE = "600/min"  # per channel; PARLEY_RATE_CHANNEL_WEBHOOK overrides


def json_error(status: int, code: str, detail: str, **extra) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail, **extra}, status=status)


def json_body(request) -> bytes | tuple[int, str, str]:
    """The raw body of a JSON event of at most ``MAX_BODY`` bytes, or why it is refused
    (status, code, detail). The declared length is checked before anything is read."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_large = (413, "payload_too_large", f"Events are at most {MAX_BODY} bytes.")
    if declared > MAX_BODY:
        return too_large
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return (415, "unsupported_media_type", "Send Content-Type: application/json.")
    raw = request.read(MAX_BODY + 1)
    return too_large if len(raw) > MAX_BODY else raw


def _refuse(request, channel, status: int, code: str, detail: str, **extra) -> JsonResponse:
    record(
        "channel.webhook_refused",
        outcome=Outcome.DENIED,
        target_type="channel",
        target_id=channel.pk,
        details={"reason": code, "public_id": channel.public_id, "status": status},
        request=request,
    )
    return json_error(status, code, detail, **extra)


def _throttled(channel) -> int | None:
    try:
        # Leased: a channel allowed thousands of events a minute pays a Redis round
        # trip once per lease, not per event (accounts.throttles.hit_leased).
        return hit_leased(
            scope="channel-webhook",
            ident=str(channel.pk),
            rate=getattr(settings, "PARLEY_RATE_CHANNEL_WEBHOOK", DEFAULT_RATE),
        )
    except Exception as exc:
        if faults.unavailable_service(exc) != "redis":
            raise
        # Fail open: see the module docstring.
        logger.warning("channel webhook rate limit skipped: Redis unavailable")
        return None


def _inline_answer(applied: inbound.Applied) -> JsonResponse:
    if applied.messages:
        message, created = applied.messages[0]
        return JsonResponse({"ok": True, "message_id": message.pk, "duplicate": not created})
    message, changed = applied.statuses[0]
    return JsonResponse(
        {
            "ok": True,
            "message_id": message.pk,
            "duplicate": not changed,
            "delivery": message.delivery,
        }
    )


@machine_endpoint
@csrf_exempt
@never_cache
@sensitive_variables("keys")
def channel_webhook(request, kind: str, public_id: str):
    channel = channels.channel_for_webhook(kind=kind, public_id=public_id)
    if request.method == "GET" and channel is not None:
        return _challenge(request, channel)
    if request.method != "POST":
        response = json_error(405, "method_not_allowed", "POST a signed JSON event.")
        response["Allow"] = "POST"
        return response
    if channel is None:
        return json_error(404, "unknown_channel", "No such channel (or it is disabled).")
    adapter = registry.get(channel.kind)

    wait = _throttled(channel)
    if wait is not None:
        response = json_error(429, "throttled", f"Too many events; retry in {wait} seconds.")
        response["Retry-After"] = str(wait)
        return response

    raw = json_body(request)
    if isinstance(raw, tuple):
        return _refuse(request, channel, *raw)

    if adapter.signature_header and not request.headers.get(adapter.signature_header, ""):
        # Nothing to check: refuse without decrypting the secret.
        return _refuse(
            request,
            channel,
            401,
            "signature_missing",
            f"The {adapter.signature_header} header is missing.",
        )
    try:
        keys = channels.channel_secrets(
            channel, purpose="channel.verify", roles=adapter.VERIFY_SECRETS, reuse=True
        )
    except KeyringError:
        return json_error(
            503, "channel_unavailable", "This channel cannot verify events right now; retry later."
        )
    try:
        refusal = adapter.refusal(request.headers, raw, keys)
    finally:
        del keys
    if refusal is not None:
        return _refuse(request, channel, 401, *refusal)

    try:
        parsed = adapter.parse(raw)
    except PayloadInvalid as exc:
        extra = {"errors": exc.errors} if getattr(exc, "errors", None) else {}
        detail = "The event is invalid." if exc.code == "invalid" else exc.detail
        return _refuse(request, channel, 400, exc.code, detail, **extra)
    return _store(request, channel, adapter, parsed, raw)


def _store(request, channel, adapter, parsed, raw: bytes):
    key = inbound.dedupe_key(parsed, raw)
    store = functools.partial(
        inbound.inbound_event_store, channel=channel, raw=raw, key=key, pk=channel.reserved_event_id
    )
    applied = None
    try:
        if not adapter.answers_inline:
            # One INSERT is its own transaction: no BEGIN/COMMIT around it (two round
            # trips on every webhook). The same statement raises the tenant's drain
            # flag if it is down; only then is a drain published.
            event, created = store(request_drain=True)
            if created and event.drain_flag_raised:
                inbound_drain_publish()
            elif not created and event.status == event.Status.PENDING:
                inbound_drain_request()
        else:
            with transaction.atomic():
                event, created = store()
                applied = _apply_inline(channel, parsed, event)
                if applied is None and event.status == event.Status.PENDING:
                    transaction.on_commit(inbound_drain_request)
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        return _refuse(request, channel, 400, "invalid", "The event is invalid.", errors=errors)
    except Http404:
        return json_error(404, "unknown_message", "No such outbound message on this channel.")
    if applied is not None:
        return _inline_answer(applied)
    return JsonResponse({"ok": True, "event_id": event.pk, "duplicate": not created})


def _apply_inline(channel, parsed, event) -> inbound.Applied | None:
    """Process in the request (the API kind): the stored event's result, or None when
    a service is down (the event stays pending for the worker)."""
    try:
        with transaction.atomic():
            applied = inbound.inbound_event_apply(channel=channel, parsed=parsed, strict=True)
            type(event).objects.filter(pk=event.pk).update(
                status=event.Status.PROCESSED, processed_at=event.received_at
            )
            return applied
    except (ValidationError, Http404):
        raise
    except Exception as exc:
        if faults.unavailable_service(exc) is None:
            raise
        logger.warning(
            "inbound event %s kept for the worker: %s down",
            event.pk,
            faults.unavailable_service(exc),
        )
        return None


def _challenge(request, channel):
    """A subscription handshake (Meta's hub.challenge): the challenge as text, or 403."""
    adapter = registry.get(channel.kind)
    try:
        keys = channels.channel_secrets(
            channel, purpose="channel.verify", roles=adapter.CHALLENGE_SECRETS
        )
    except KeyringError:
        return json_error(503, "channel_unavailable", "Retry later.")
    try:
        echo = adapter.verify_challenge(request.GET, keys)
    finally:
        del keys
    if echo is None:
        return _refuse(
            request, channel, 403, "challenge_refused", "The verify token does not match."
        )
    return HttpResponse(echo, content_type="text/plain")
