"""The platform's shared Meta app: ``/webhooks/meta/<kind>/`` on the platform host.

One URL per kind for every tenant whose channel uses the shared app, signed with
the platform's app secret (``PARLEY_META_APP_SECRET``). One POST can carry
entries for several businesses, so the body is split by routing id (the
account each entry or change concerns) and each part is stored as an
``InboundEvent`` in the one tenant that connected that account
(``tenants.ChannelRoute``, public schema), inside that tenant's schema. A part
never reaches another tenant: the route names one schema and one channel, and
the channel's own routing setting must name the same account (checked again
when processing, ``connectors.inbound``). Parts for unknown (or paused)
accounts are dropped; the request's drop count is audited once in the
platform's trail.

Checks run cheapest first, as in ``connectors.webhooks``: shared app enabled,
kind, rate, size, content type, signature header, signature (the platform
secret), parse. A refusal is audited in the platform's trail, without payload.
If storing fails in any tenant the answer is 500, so Meta retries the whole
batch; the store is idempotent per channel and dedupe key, so parts already
stored are not stored twice.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django_tenants.utils import tenant_context

from accounts.throttles import hit
from audit.models import Outcome
from audit.services import record
from connectors import inbound
from connectors.adapters import registry
from connectors.adapters.base import PayloadInvalid
from connectors.adapters.payload import load_json
from connectors.channels import ROUTING_SETTINGS, channel_is_shared
from connectors.meta import common as meta_common
from connectors.models import Channel
from connectors.tasks import inbound_drain_request
from connectors.webhooks import json_body, json_error
from parley import faults
from parley.middleware import machine_endpoint
from tenants.selectors import channel_routes_for

logger = logging.getLogger(__name__)

DEFAULT_RATE = "6000/min"  # per kind; PARLEY_RATE_META_SHARED_WEBHOOK overrides


def _refuse(request, kind: str, status: int, code: str, detail: str) -> JsonResponse:
    with transaction.atomic():
        record(
            "channel.shared_webhook_refused",
            outcome=Outcome.DENIED,
            target_type="shared_app",
            target_id=kind,
            details={"reason": code, "kind": kind, "status": status},
            request=request,
        )
    return json_error(status, code, detail)


def _throttled(kind: str) -> int | None:
    try:
        return hit(
            scope="meta-shared-webhook",
            ident=kind,
            rate=getattr(settings, "PARLEY_RATE_META_SHARED_WEBHOOK", DEFAULT_RATE),
        )
    except Exception as exc:
        if faults.unavailable_service(exc) != "redis":
            raise
        logger.warning("shared webhook rate limit skipped: Redis unavailable")
        return None


def _platform_secrets() -> dict[str, str]:
    return {
        "app_secret": getattr(settings, "PARLEY_META_APP_SECRET", "") or "",
        "verify_token": getattr(settings, "PARLEY_META_VERIFY_TOKEN", "") or "",
    }


def split_by_routing_id(adapter, document: dict) -> tuple[OrderedDict[str, list], int]:
    """``({routing_id: [entry, …]}, unroutable)``: each entry (for WhatsApp each
    change of an entry, which names its own phone-number id) parsed alone for its
    routing id. An entry naming no account, or several, is unroutable."""
    parts: OrderedDict[str, list] = OrderedDict()
    unroutable = 0
    for entry in document.get("entry") or []:
        units = [entry]
        if isinstance(entry, dict) and isinstance(entry.get("changes"), list):
            rest = {k: v for k, v in entry.items() if k != "changes"}
            units = [{**rest, "changes": [change]} for change in entry["changes"]]
        for unit in units:
            single = {"object": document.get("object"), "entry": [unit]}
            try:
                keys = adapter.parse_document(single).routing_keys
            except Exception:  # noqa: BLE001 - PayloadInvalid or an adapter bug: unroutable
                keys = ()
            if len(keys) != 1:
                unroutable += 1
                continue
            parts.setdefault(keys[0], []).append(unit)
    return parts, unroutable


def _drain_in(tenant) -> None:
    with tenant_context(tenant):
        inbound_drain_request()


def _store_part(route, kind: str, adapter, body: dict) -> bool:
    """Store one tenant's part in its schema; False if its channel is gone or not ours."""
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with tenant_context(route.tenant):
        channel = (
            Channel.objects.select_related("inbox")
            .filter(public_id=route.channel_public_id, kind=kind, enabled=True)
            .first()
        )
        routing = ROUTING_SETTINGS[kind]
        if (
            channel is None
            or not channel_is_shared(channel)
            or str((channel.settings or {}).get(routing, "")) != route.routing_id
        ):
            return False
        parsed = adapter.parse(raw)
        key = inbound.dedupe_key(parsed, raw)
        with transaction.atomic():
            event, _created = inbound.inbound_event_store(channel=channel, raw=raw, key=key)
            if event.status == event.Status.PENDING:
                tenant = route.tenant
                transaction.on_commit(lambda: _drain_in(tenant))
    return True


@machine_endpoint
@csrf_exempt
@never_cache
@sensitive_variables("keys")
def shared_webhook(request, kind: str):
    if not getattr(settings, "PARLEY_META_SHARED_APP", False) or kind not in ROUTING_SETTINGS:
        return json_error(404, "unknown_channel", "No shared app for this kind.")
    if kind not in registry.kinds():
        return json_error(404, "unknown_channel", "No shared app for this kind.")
    adapter = registry.get(kind)
    keys = _platform_secrets()
    if request.method == "GET":
        echo = adapter.verify_challenge(request.GET, keys) if keys["verify_token"] else None
        if echo is None:
            return _refuse(
                request, kind, 403, "challenge_refused", "The verify token does not match."
            )
        return HttpResponse(echo, content_type="text/plain")
    if request.method != "POST":
        response = json_error(405, "method_not_allowed", "POST a signed JSON event.")
        response["Allow"] = "GET, POST"
        return response

    wait = _throttled(kind)
    if wait is not None:
        response = json_error(429, "throttled", f"Too many events; retry in {wait} seconds.")
        response["Retry-After"] = str(wait)
        return response
    raw = json_body(request)
    if isinstance(raw, tuple):
        return _refuse(request, kind, *raw)
    if not request.headers.get(meta_common.SIGNATURE_HEADER, ""):
        return _refuse(
            request,
            kind,
            401,
            "signature_missing",
            f"The {meta_common.SIGNATURE_HEADER} header is missing.",
        )
    if not keys["app_secret"] or not adapter.verify(request.headers, raw, keys):
        return _refuse(request, kind, 401, "signature_invalid", "The signature does not match.")
    del keys

    try:
        adapter.parse(raw)  # the whole batch, bounded: a malformed one is refused as a whole
        document = load_json(raw)
    except PayloadInvalid as exc:
        return _refuse(request, kind, 400, exc.code, exc.detail)
    parts, unroutable = split_by_routing_id(adapter, document)
    routes = channel_routes_for(kind=kind, routing_ids=parts.keys())
    stored, unknown = 0, []
    for routing_id, units in parts.items():
        route = routes.get(routing_id)
        body = {"object": document.get("object"), "entry": units}
        if route is not None and _store_part(route, kind, adapter, body):
            stored += 1
        else:
            unknown.append(routing_id)
    if unknown or unroutable:
        # Aggregated: one event per request, ids cut to a few (account ids, not personal data).
        with transaction.atomic():
            record(
                "channel.shared_webhook_unrouted",
                outcome=Outcome.DENIED,
                target_type="shared_app",
                target_id=kind,
                details={
                    "kind": kind,
                    "unknown": len(unknown),
                    "unroutable": unroutable,
                    "routing_ids": unknown[:10],
                },
                request=request,
            )
    return JsonResponse({"ok": True, "stored": stored, "dropped": len(unknown) + unroutable})
