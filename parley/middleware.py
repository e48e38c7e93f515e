"""Cross-cutting request middleware: request ids, the security headers, and 503
instead of 500 while PostgreSQL or Redis is down."""

from __future__ import annotations

import logging
import re
import sys
import threading
import uuid

from django.conf import settings
from django.core.exceptions import DisallowedHost, ImproperlyConfigured
from django.core.signals import got_request_exception
from django.http import HttpResponse, JsonResponse
from django.template import loader
from django.urls import Resolver404, get_resolver

from parley import faults
from parley.health import healthz
from parley.views import not_found

_local = threading.local()
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def current_request_id() -> str:
    return getattr(_local, "request_id", "-")


class RequestIdMiddleware:
    """Give each request an id (the edge proxy's X-Request-ID when well-formed)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        _local.request_id = request.id
        try:
            response = self.get_response(request)
        finally:
            _local.request_id = "-"
        response["X-Request-ID"] = request.id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class ContentSecurityPolicyMiddleware:
    """A strict CSP on every response: scripts and styles from our origin only."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.DEBUG and _is_debug_404(response):
            # Django's DEBUG 404 page styles itself inline, which this policy
            # refuses: show Parley's own page (the server log names the path).

            response = not_found(request)
        response.setdefault("Content-Security-Policy", settings.PARLEY_CSP)
        response.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
        )
        return response


_DEBUG_404_MARK = b"seeing this error because you have <code>DEBUG = True</code>"


def _is_debug_404(response) -> bool:
    return (
        response.status_code == 404
        and not getattr(response, "streaming", False)
        and response.get("Content-Type", "").startswith("text/html")
        and _DEBUG_404_MARK in response.content
    )


# --- a dependency is down: 503 with Retry-After, never 500 -------------------------

logger = logging.getLogger("parley.outage")
_OUTAGE_ATTR = "_parley_unavailable"


def _note_outage(sender, request=None, **kwargs) -> None:
    """Remember on the request that the exception being turned into a 500 is an outage.

    Django converts an exception into a response inside the middleware that
    raised it (tenant resolution, sessions, revocation...), so the outermost
    middleware only ever sees a 500 response; this signal, sent while the
    exception is being handled, is the one place that still sees the cause.
    """
    service = faults.unavailable_service(sys.exc_info()[1])
    if service is not None and request is not None:
        setattr(request, _OUTAGE_ATTR, service)


got_request_exception.connect(_note_outage, dispatch_uid="parley.middleware.note_outage")


def _wants_json(request) -> bool:
    return request.path.startswith(("/api/", "/webhooks/", "/healthz"))


def _is_platform_healthz(request) -> bool:
    if request.path != "/healthz" or request.method != "GET":
        return False
    try:
        host = request.get_host().split(":")[0].lower()
    except DisallowedHost:
        return False
    return host == settings.PARLEY_BASE_DOMAIN


def unavailable_response(request) -> HttpResponse:
    """503 with Retry-After: JSON for API and webhook clients, a plain page for people.

    The page is rendered without a request context: context processors would
    ask the database or Redis, which is what just failed.
    """
    retry_after = settings.PARLEY_RETRY_AFTER_SECONDS
    if _wants_json(request):
        response: HttpResponse = JsonResponse(
            {
                "code": "service_unavailable",
                "detail": f"Parley is briefly unavailable; retry in {retry_after} seconds.",
                "retry_after": retry_after,
            },
            status=503,
        )
    else:
        response = HttpResponse(
            loader.get_template("errors/503.html").render({"retry_after": retry_after}),
            status=503,
        )
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    # Logged once as a warning by the middleware, not again as an error by Django.
    response._has_been_logged = True
    return response


class ServiceUnavailableMiddleware:
    """Turn a request that failed because PostgreSQL, Redis or the broker is down
    into 503 + ``Retry-After`` (senders such as Meta retry; people see a page).

    Sits outside tenant resolution, which is the first thing to ask the database.
    A database outage also drops the broken connections so the next request
    reconnects. ``/healthz`` on the platform domain still answers with what is
    down, even when the tenant lookup in front of it failed.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        service = getattr(request, _OUTAGE_ATTR, None)
        if service is None or response.status_code < 500:
            return response
        logger.warning("%s unavailable: %s %s answered 503", service, request.method, request.path)
        if service == "database":
            faults.close_broken_connections()
        if _is_platform_healthz(request):
            response = healthz(request)
            response._has_been_logged = True  # the warning above said it
            return response
        return unavailable_response(request)


class OutageLogFilter(logging.Filter):
    """Keep outage tracebacks out of ``django.request``: the middleware above logs
    one warning per request instead of an error with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return faults.unavailable_service(exc) is None


# --- machine endpoints: the browser's middleware skipped ----------------------------------------


def machine_endpoint(view):
    """Mark a view that machines call, authenticated by a signature over the body
    (webhooks): no cookies, no session, no sign-in, no CSRF token. Under a path of
    ``PARLEY_MACHINE_PATH_PREFIXES``, such a view is reached without the browser's
    middleware (``MachineEndpointMiddleware``)."""
    view.machine_endpoint = True
    return view


_chain_end = threading.local()


class MachineEndpointMiddleware:
    """Send requests for machine endpoints past the browser's middleware.

    Everything listed between this middleware and ``BrowserChainEndMiddleware``
    (sessions, CSRF, sign-in, MFA, revocation, break-glass, messages, frame
    options, htmx) serves people in a browser. A webhook needs none of it, yet
    paid for it on every event (about a fifth of a bare request's CPU). A request
    whose path starts with one of ``PARLEY_MACHINE_PATH_PREFIXES`` *and* resolves
    to a view marked ``machine_endpoint`` goes straight to what follows
    ``BrowserChainEndMiddleware``: Django's own view handling (URL resolution,
    view middleware such as CSRF's check, which exempt views pass, exceptions
    turned into responses). Everything before this middleware (request id,
    security headers, CSP, 503 on outages, tenant, audit, tenant status) still
    runs. Any other request, a path under the prefix that does not resolve to a
    marked view included, takes the whole chain.

    Django builds the chain innermost first, so ``BrowserChainEndMiddleware``
    (last in ``MIDDLEWARE``) is built just before this one and hands it the
    handler it wraps.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.view_handler = getattr(_chain_end, "handler", None)
        if self.view_handler is None:
            raise ImproperlyConfigured(
                "MachineEndpointMiddleware needs parley.middleware.BrowserChainEndMiddleware "
                "last in MIDDLEWARE."
            )
        del _chain_end.handler
        self.prefixes = tuple(settings.PARLEY_MACHINE_PATH_PREFIXES)

    def __call__(self, request):
        if self.prefixes and request.path_info.startswith(self.prefixes):
            try:
                match = get_resolver(getattr(request, "urlconf", None)).resolve(request.path_info)
            except Resolver404:
                match = None
            if match is not None and getattr(match.func, "machine_endpoint", False):
                return self.view_handler(request)
        return self.get_response(request)


class BrowserChainEndMiddleware:
    """The end of the browser's middleware (see ``MachineEndpointMiddleware``): it
    hands the handler it wraps to that middleware and passes every request on."""

    def __init__(self, get_response):
        self.get_response = get_response
        _chain_end.handler = get_response

    def __call__(self, request):
        return self.get_response(request)
