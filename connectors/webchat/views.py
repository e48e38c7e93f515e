"""Web chat endpoints on the tenant's host, under ``/webchat/<public_id>/``.

``GET  .../``           the chat frame (HTML) the widget script embeds; ``frame-ancestors``
                        names only the channel's allowed origins.
``POST .../session/``   a visitor token: new visitor, or a refresh with ``Authorization: Bearer``.
``GET  .../messages/``  the visitor's messages after ``?after=<id>`` (long poll up to ``?wait=``).
``POST .../messages/``  ``{"text": "...", "client_id": "..."}``: a visitor message.
``POST .../read/``      ``{"up_to": <id>}``: the replies the widget has shown.

No session, no CSRF token (nothing here acts for a signed-in user): the visitor
token is the authentication. A request naming an ``Origin`` that is neither
Parley's own host nor one of the channel's allowed origins is refused (403
``origin_not_allowed``); allowed ones get CORS headers. Every answer is JSON
with a stable ``code`` on refusal.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages as django_messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.permissions import permission_required, step_up_required
from accounts.policy import Perm
from accounts.throttles import Limit, hit_many
from audit.context import client_ip
from connectors import channel_views
from connectors.models import Channel
from connectors.webchat import services
from parley import validation
from parley.forms import add_validation_error

MAX_BODY = 16 * 1024  # a JSON body: a message of MAX_TEXT characters fits with room
POLL_STEP = 1.0  # seconds between looks while a poll waits
CORS_MAX_AGE = "600"


def _answer(status: int, code: str, detail: str, **extra) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail, **extra}, status=status)


def _own_origin(request) -> str:
    return f"{request.scheme}://{request.get_host()}".lower()


def _origin_allowed(request, channel: Channel) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a cross-origin browser request (same-origin GET, a server)
    origin = origin.strip().lower()
    return origin == _own_origin(request) or origin in services.allowed_origins_of(channel)


def _cors(request, channel: Channel, response):
    origin = request.headers.get("Origin")
    if origin and origin.strip().lower() in services.allowed_origins_of(channel):
        response["Access-Control-Allow-Origin"] = origin.strip().lower()
        response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Max-Age"] = CORS_MAX_AGE
    response["Vary"] = "Origin"
    return response


def _throttled(wait: int) -> JsonResponse:
    response = _answer(429, "throttled", f"Too many requests; retry in {wait} seconds.")
    response["Retry-After"] = str(wait)
    return response


def _endpoint(methods: tuple[str, ...]):
    """Channel lookup, method, CORS preflight and origin check, shared by the JSON endpoints."""

    def wrap(view):
        @csrf_exempt
        @never_cache
        def inner(request, public_id: str):
            channel = services.channel_for_visitor(public_id=public_id)
            if channel is None:
                return _answer(404, "unknown_channel", "No such chat (or it is paused).")
            if request.method == "OPTIONS":
                if not _origin_allowed(request, channel):
                    return _answer(403, "origin_not_allowed", "This site may not use this chat.")
                return _cors(request, channel, HttpResponse(status=204))
            if request.method not in methods:
                response = _answer(405, "method_not_allowed", f"Use {' or '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return _cors(request, channel, response)
            if not _origin_allowed(request, channel):
                return _answer(403, "origin_not_allowed", "This site may not use this chat.")
            return _cors(request, channel, view(request, channel))

        return inner

    return wrap


def _bearer(request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _visitor(request, channel: Channel):
    """``(visitor, None)`` or ``(None, 401 answer)``."""
    try:
        return services.token_verify(channel=channel, token=_bearer(request)), None
    except services.TokenError as exc:
        response = _answer(401, exc.code, exc.detail)
        response["WWW-Authenticate"] = 'Bearer realm="webchat"'
        return None, response


def _json_body(request):
    """The decoded JSON object, or a 4xx answer."""
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return None, _answer(415, "unsupported_media_type", "Send Content-Type: application/json.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY:
        return None, _answer(413, "payload_too_large", f"At most {MAX_BODY} bytes.")
    raw = request.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return None, _answer(413, "payload_too_large", f"At most {MAX_BODY} bytes.")
    try:
        payload = validation.json_loads(raw)
    except validation.JSONSyntaxError:
        return None, _answer(400, "invalid_json", "The body is not valid JSON.")
    except ValidationError as exc:
        return None, _invalid(exc)
    if not isinstance(payload, dict):
        return None, _answer(400, "invalid_payload", "Send a JSON object.")
    return payload, None


def _invalid(exc: ValidationError) -> JsonResponse:
    errors = exc.message_dict if hasattr(exc, "error_dict") else {"body": exc.messages}
    field = next(iter(errors), "body")
    detail = " ".join(errors.get(field, [])) or "The request is not valid."
    return _answer(400, "invalid", detail[:300], field=field)


def _ip(request) -> str:
    return client_ip(request) or "unknown"


# --- the frame --------------------------------------------------------------------------------


@never_cache
@xframe_options_exempt  # framing is governed by frame-ancestors below, per channel
def frame(request, public_id: str):
    channel = services.channel_for_visitor(public_id=public_id)
    if channel is None:
        raise Http404("No such chat.")
    response = render(
        request,
        "webchat/frame.html",
        {
            "channel": channel,
            "public_id": channel.public_id,
            "refresh_seconds": max(30, settings.PARLEY_WEBCHAT_TOKEN_SECONDS // 2),
        },
    )
    ancestors = " ".join(["'self'", *services.allowed_origins_of(channel)])
    response["Content-Security-Policy"] = settings.PARLEY_CSP.replace(
        "frame-ancestors 'none'", f"frame-ancestors {ancestors}"
    )
    return response


# --- JSON endpoints -------------------------------------------------------------------------


@_endpoint(("POST",))
def session(request, channel: Channel):
    if _bearer(request):
        visitor, refused = _visitor(request, channel)
        if refused is not None:
            return refused
        wait = hit_many(
            [
                Limit(
                    "webchat-refresh",
                    visitor.visitor_id,
                    settings.PARLEY_RATE_WEBCHAT_POLL_PER_VISITOR,
                ),
                Limit("webchat-channel", str(channel.pk), settings.PARLEY_RATE_WEBCHAT_PER_CHANNEL),
            ]
        )
        if wait is not None:
            return _throttled(wait)
        token, visitor = services.token_issue(channel=channel, visitor_id=visitor.visitor_id)
        status = 200
    else:
        wait = hit_many(
            [
                Limit(
                    "webchat-session-ip", _ip(request), settings.PARLEY_RATE_WEBCHAT_SESSION_PER_IP
                ),
                Limit("webchat-channel", str(channel.pk), settings.PARLEY_RATE_WEBCHAT_PER_CHANNEL),
            ]
        )
        if wait is not None:
            return _throttled(wait)
        token, visitor = services.token_issue(channel=channel)
        status = 201
    return JsonResponse(
        {
            "token": token,
            "expires_in": settings.PARLEY_WEBCHAT_TOKEN_SECONDS,
            "channel": channel.public_id,
        },
        status=status,
    )


def _after(value) -> int | None:
    if value in (None, ""):
        return 0
    number = validation.ascii_int(value) if isinstance(value, str) and len(value) <= 20 else None
    if number is None or number < 0 or number > validation.INT64_MAX:
        return None
    return number


@_endpoint(("GET", "POST"))
def messages(request, channel: Channel):
    visitor, refused = _visitor(request, channel)
    if refused is not None:
        return refused
    if request.method == "POST":
        return _send(request, channel, visitor)
    after = _after(request.GET.get("after"))
    if after is None:
        return _answer(400, "invalid", "after is a message id (a whole number).", field="after")
    wait_param = request.GET.get("wait", "0")
    wait_for = _after(wait_param)
    if wait_for is None:
        return _answer(400, "invalid", "wait is a number of seconds.", field="wait")
    wait_for = min(wait_for, settings.PARLEY_WEBCHAT_POLL_SECONDS)
    throttle = hit_many(
        [
            Limit(
                "webchat-poll", visitor.visitor_id, settings.PARLEY_RATE_WEBCHAT_POLL_PER_VISITOR
            ),
            Limit("webchat-channel", str(channel.pk), settings.PARLEY_RATE_WEBCHAT_PER_CHANNEL),
        ]
    )
    if throttle is not None:
        return _throttled(throttle)
    # Long poll: look once a second until something is there or the wait is over.
    deadline = time.monotonic() + wait_for
    while not services.visitor_has_news(visitor=visitor, after=after):
        if time.monotonic() >= deadline:
            return JsonResponse({"messages": [], "cursor": after})
        time.sleep(POLL_STEP)
    found = services.visitor_messages(visitor=visitor, after=after)
    cursor = found[-1]["id"] if found else after
    return JsonResponse({"messages": found, "cursor": cursor})


def _send(request, channel: Channel, visitor) -> JsonResponse:
    wait = hit_many(
        [
            Limit(
                "webchat-msg-visitor",
                visitor.visitor_id,
                settings.PARLEY_RATE_WEBCHAT_MESSAGE_PER_VISITOR,
            ),
            Limit("webchat-msg-ip", _ip(request), settings.PARLEY_RATE_WEBCHAT_MESSAGE_PER_IP),
            Limit("webchat-channel", str(channel.pk), settings.PARLEY_RATE_WEBCHAT_PER_CHANNEL),
        ]
    )
    if wait is not None:
        return _throttled(wait)
    payload, refused = _json_body(request)
    if refused is not None:
        return refused
    try:
        shown, created = services.visitor_message_send(
            visitor=visitor, text=payload.get("text"), client_id=payload.get("client_id")
        )
    except ValidationError as exc:
        return _invalid(exc)
    return JsonResponse({"message": shown, "created": created}, status=201 if created else 200)


@_endpoint(("POST",))
def read(request, channel: Channel):
    visitor, refused = _visitor(request, channel)
    if refused is not None:
        return refused
    payload, refused = _json_body(request)
    if refused is not None:
        return refused
    up_to = payload.get("up_to")
    if (
        not isinstance(up_to, int)
        or isinstance(up_to, bool)
        or not 0 <= up_to <= validation.INT64_MAX
    ):
        return _answer(400, "invalid", "up_to is a message id.", field="up_to")
    return JsonResponse({"read": services.visitor_read(visitor=visitor, up_to=up_to)})


# --- the demo host page (development only) ------------------------------------------------------


@never_cache
def demo(request):
    """A customer's web page with the widget on it, for ``make run`` (404 in production)."""
    if settings.PRODUCTION:
        raise Http404
    channel = (
        Channel.objects.filter(kind=services.KIND, enabled=True, inbox__isnull=False)
        .order_by("name")
        .first()
    )
    if channel is None:
        raise Http404("No web chat channel: run `python manage.py parley_demo`.")
    return render(request, "webchat/demo.html", {"channel": channel})


# --- management (the channels page) -------------------------------------------------------------


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
@never_cache
def channel_create(request):
    form = channel_views.webchat_form(request, request.POST)
    if form.is_valid():
        try:
            channel = services.webchat_channel_create(
                by=request.user,
                name=form.cleaned_data["name"],
                allowed_origins=form.cleaned_data["allowed_origins"],
                inbox_id=form.cleaned_data["inbox"],
            )
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            django_messages.success(
                request, f"Web chat {channel.name} created: add its script tag to your site."
            )
            return redirect("connectors:channels")
    return channel_views._page(request, webchat=form, status=400)


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
@never_cache
def origins_set(request, channel_id: int):
    channel = channel_views.channels.channel_get(channel_id=channel_id)
    if channel.kind != services.KIND:
        django_messages.error(
            request, f"{channel.name} is not a web chat: it has no allowed sites."
        )
        return redirect("connectors:channels")
    try:
        services.webchat_origins_set(
            by=request.user,
            channel=channel,
            allowed_origins=request.POST.get("allowed_origins", "")[:6000],
        )
    except ValidationError as exc:
        django_messages.error(request, " ".join(exc.messages)[:300])
    else:
        django_messages.success(request, f"Allowed sites of {channel.name} saved.")
    return redirect("connectors:channels")
