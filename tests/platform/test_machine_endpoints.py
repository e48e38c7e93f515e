"""Machine endpoints (webhooks) skip the browser's middleware; everything else keeps it.

``parley.middleware.MachineEndpointMiddleware`` sends a request past sessions,
CSRF, sign-in, MFA, revocation, break-glass, messages, frame options and htmx
only when its path starts with a ``PARLEY_MACHINE_PATH_PREFIXES`` prefix *and*
resolves to a view marked ``machine_endpoint``. These tests pin both halves:
the webhook really skips that middleware (a signed-in browser's cookies change
nothing and no session is read or written), and every other request, a wrong
path under the prefix included, still takes the whole chain.
"""

from __future__ import annotations

import json
import threading

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, JsonResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import path, resolve
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from connectors.models import InboundEvent
from parley.middleware import (
    BrowserChainEndMiddleware,
    MachineEndpointMiddleware,
    machine_endpoint,
)
from tests import support
from tests.connectors.meta.support import signed
from tests.connectors.test_channel_hot_path import _payload
from tests.connectors.test_inbound_events import _meta_channel, _post

# --- the pair on its own, with a URLconf of this module ---------------------------------------


@machine_endpoint
def marked(request):
    return JsonResponse({"session": hasattr(request, "session"), "user": hasattr(request, "user")})


def unmarked(request):
    return JsonResponse({"session": hasattr(request, "session"), "user": hasattr(request, "user")})


urlpatterns = [
    path("webhooks/marked/", marked),
    path("webhooks/unmarked/", unmarked),
    path("elsewhere/marked/", marked),
]


def _chain():
    """Head -> a stand-in for the browser's middleware (it sets ``session`` and
    ``user``) -> chain end -> the view, built innermost first as Django builds it."""

    def view_handler(request):
        match = request.resolver_match
        return match.func(request)

    end = BrowserChainEndMiddleware(view_handler)

    def browser(request):
        request.session, request.user = "session", "user"
        return end(request)

    return MachineEndpointMiddleware(browser)


def _call(head, url: str) -> dict:
    request = RequestFactory().post(url)
    request.urlconf = __name__
    request.resolver_match = resolve(url, urlconf=__name__)
    return json.loads(head(request).content)


SKIPPED = {"session": False, "user": False}
FULL = {"session": True, "user": True}


def test_a_marked_view_under_the_prefix_skips_the_browser_middleware():
    assert _call(_chain(), "/webhooks/marked/") == SKIPPED


def test_an_unmarked_view_under_the_prefix_takes_the_whole_chain():
    assert _call(_chain(), "/webhooks/unmarked/") == FULL


def test_a_marked_view_outside_the_prefixes_takes_the_whole_chain():
    assert _call(_chain(), "/elsewhere/marked/") == FULL


def test_no_prefixes_means_every_request_takes_the_whole_chain():
    with override_settings(PARLEY_MACHINE_PATH_PREFIXES=()):
        head = _chain()
    assert _call(head, "/webhooks/marked/") == FULL


@pytest.mark.parametrize(
    "url",
    [
        "/webhooks/marked",  # no slash: no match, so the browser chain (and its 404)
        "/webhooks/marked/extra/",
        "/webhooks/%00/",
        "/webhooks/\ud800/",
        "/webhooks/ma\u0000rked/",
    ],
)
def test_a_path_under_the_prefix_that_does_not_resolve_takes_the_whole_chain(url):
    seen = {}

    def browser(request):
        seen["browser"] = True
        return HttpResponse(status=404)

    BrowserChainEndMiddleware(lambda request: HttpResponse("view"))
    head = MachineEndpointMiddleware(browser)
    request = RequestFactory().post("/")
    request.path_info = url
    request.urlconf = __name__
    assert head(request).status_code == 404
    assert seen == {"browser": True}


def test_the_head_without_the_chain_end_refuses_to_start():
    errors = []

    def build():  # a fresh thread: no chain end was built in it
        try:
            MachineEndpointMiddleware(lambda request: HttpResponse())
        except ImproperlyConfigured as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=build)
    thread.start()
    thread.join()
    assert errors and "BrowserChainEndMiddleware" in errors[0]


def test_the_settings_wrap_the_browser_middleware_between_the_pair():
    chain = list(settings.MIDDLEWARE)
    head = chain.index("parley.middleware.MachineEndpointMiddleware")
    assert chain[-1] == "parley.middleware.BrowserChainEndMiddleware"
    browser = chain[head + 1 : -1]
    for name in (
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "accounts.middleware.MfaGateMiddleware",
        "tenants.breakglass.middleware.BreakGlassMiddleware",
    ):
        assert name in browser
    # What every request needs stays in front of the head.
    for name in (
        "parley.middleware.RequestIdMiddleware",
        "parley.middleware.ContentSecurityPolicyMiddleware",
        "parley.middleware.ServiceUnavailableMiddleware",
        "django_tenants.middleware.main.TenantMainMiddleware",
        "audit.middleware.AuditContextMiddleware",
        "tenants.middleware.TenantStatusMiddleware",
        "django.middleware.common.CommonMiddleware",
    ):
        assert chain.index(name) < head


# --- the real stack ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_webhook_from_a_signed_in_browser_reads_and_writes_no_session(acme):
    channel = _meta_channel(acme, "whatsapp")
    raw = _payload(1, run="machine")
    response = _post(channel, raw, signed(raw), client=support.signed_in(acme, "admin@acme.test"))
    assert response.status_code == 200, response.content
    assert "Set-Cookie" not in response.headers and not response.cookies
    assert "Cookie" not in response.get("Vary", "")
    assert "X-Frame-Options" not in response.headers  # the browser's middleware did not run
    # What runs for every request still did.
    assert response["X-Request-ID"]
    assert "frame-ancestors" in response["Content-Security-Policy"]
    assert response["Content-Length"] == str(len(response.content))
    with tenant_context(acme):
        assert InboundEvent.objects.filter(channel_id=channel.pk).count() == 1


@pytest.mark.django_db
def test_a_browser_page_still_takes_the_browser_middleware(acme):
    response = support.signed_in(acme, "admin@acme.test").get("/")
    assert response["X-Frame-Options"] == "DENY"
    assert "Cookie" in response.get("Vary", "")


@pytest.mark.django_db
def test_a_browser_post_without_its_csrf_token_is_still_refused(acme):
    client = support.signed_in(
        acme, "admin@acme.test", client=Client(HTTP_HOST="acme.localhost", enforce_csrf_checks=True)
    )
    assert client.post("/logout/").status_code == 403
    assert client.get("/users/").status_code == 200  # a page sets the CSRF cookie
    csrf = client.cookies[settings.CSRF_COOKIE_NAME].value
    assert client.post("/logout/", {"csrfmiddlewaretoken": csrf}).status_code == 302


@pytest.mark.django_db
def test_a_refused_webhook_is_still_audited_and_stores_nothing(acme):
    channel = _meta_channel(acme, "whatsapp")
    raw = _payload(2, run="machine")
    response = _post(channel, raw, {"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert response.status_code == 401
    assert response.json()["code"]
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="channel.webhook_refused").exists()
        assert not InboundEvent.objects.filter(channel_id=channel.pk).exists()
