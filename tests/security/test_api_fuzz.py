"""Property-based API fuzzing (schemathesis) against the real WSGI app.

Every operation of ``/api/schema/`` is called with generated valid and invalid
input at acme's host, once per role (a token signed in with a one-time code, so
step-up-guarded operations are reachable) and once anonymously. Each run must
get no 5xx and only responses the schema documents (status, content type,
body); anonymous callers get 401 everywhere except signing in.

Each role's run is one rolled-back transaction with fresh rate counters and a
fresh token, so what one run changes (a user deactivated, a credential
deleted) cannot break the next. Bounded for CI: few examples per operation,
derandomised, no shrinking. The checks: no 5xx, a documented status code,
content type and body (``parley.api.document_error_responses`` documents the
JSON errors every operation can answer).
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.urls import Resolver404, resolve
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from accounts.models import TOTPDevice
from accounts.permissions import required_permission_for
from accounts.policy import role_has
from bots import services as bot_services
from connectors.ai.services import ai_provider_create
from connectors.channels import channel_create
from connectors.services import credential_set
from conversations.access import inbox_member_add
from conversations.models import Conversation, Inbox
from conversations.services import contact_create
from tenants.models import Tenant
from tests import support

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

HOST = support.TENANTS["acme"]
BASE_URL = f"http://{HOST}"
# Signing in, refreshing and signing out take credentials in the body, not a bearer token.
PUBLIC = {"/api/v1/auth/token/", "/api/v1/auth/token/refresh/", "/api/v1/auth/token/revoke/"}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


class _App(WSGIHandler):
    """The project's WSGI handler, minus closing the connection around each request
    (the test transaction lives on it), as Django's own test client does."""

    def __call__(self, environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = super().__call__(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                response.close()  # sends request_finished
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db):
    support.clear_rate_counters()
    response = support.tenant_client("acme").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    loaded = schemathesis.openapi.from_dict(response.json())
    loaded.app = _App()
    yield loaded
    support.clear_rate_counters()


def _token(role: str) -> str:
    acme = Tenant.objects.get(slug="acme")
    email = f"{role}@acme.test"
    with tenant_context(acme):
        user = get_user_model().objects.get(email=email)
        device = TOTPDevice.objects.create(user=user, name="fuzz", confirmed=True)
    connection.set_schema_to_public()
    response = support.tenant_client("acme").post(
        "/api/v1/auth/token/",
        {"username": email, "password": support.PASSWORD, "otp": support.totp_now(device)},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["access"]


@pytest.fixture(params=["anonymous", *support.ROLES])
def caller(request, api_schema) -> tuple[str, dict[str, str]]:
    role = request.param
    if role == "anonymous":
        return role, {}
    return role, {"Authorization": f"Bearer {_token(role)}"}


@pytest.fixture
def known_ids(api_schema) -> dict[str, int]:
    """One object of each kind at acme (in this run's transaction), so that generated
    requests reach past the 404 of an unknown id."""
    acme = Tenant.objects.get(slug="acme")
    User = get_user_model()
    with tenant_context(acme):
        owner = User.objects.get(email="owner@acme.test")
        agent = User.objects.get(email="agent@acme.test")
        inbox = Inbox.objects.create(name="fuzz inbox")
        inbox_member_add(by=owner, inbox=inbox, user=agent)
        conversation = Conversation.objects.create(
            inbox=inbox,
            contact=contact_create(name="Fuzz Contact", email="fuzz@example.test"),
            last_activity_at=timezone.now(),
        )
        credential = credential_set(
            name="fuzz-cred", kind="api_key", connector="hubspot", secret="fuzz-secret-1"
        )
        channel, _ = channel_create(
            by=owner, name="fuzz channel", outbound_url="https://x.example/"
        )
        # Port 9 (discard) on loopback: a "test" call is refused at once, nothing leaves.
        provider = ai_provider_create(
            by=owner,
            name="fuzz provider",
            base_url="http://127.0.0.1:9/v1",
            model="fuzz-model",
            api_key="sk-fuzz-key-0001",
        )
        flow = bot_services.flow_create(by=owner, name="fuzz flow")
        bot_services.flow_publish(by=owner, flow=flow)
        article = bot_services.article_create(by=owner, title="Fuzz", body="Fuzz article.")
        ids = {
            "flow_id": flow.pk,
            "number": 1,
            "article_id": article.pk,
            "channel_id": channel.pk,
            "provider_id": provider.pk,
            "conversation_id": conversation.pk,
            "credential_id": credential.pk,
            "inbox_id": inbox.pk,
            "user_id": User.objects.get(email="agent2@acme.test").pk,
        }
    connection.set_schema_to_public()
    return ids


def _routed(response) -> bool:
    """Whether the URL reaches a view (an id that is not digits is a 404 before any view)."""
    try:
        resolve(urlsplit(response.request.url).path, urlconf=django_settings.ROOT_URLCONF)
    except Resolver404:
        return False
    return True


def _refused(role: str, operation) -> bool:
    """Whether the policy table refuses ``role`` the operation's view (as the role
    matrix reads it: the permission the view names for the method). Such a request
    is answered 403 by the view's permission check, before any input is read."""
    if role == "anonymous":
        return False  # checked on its own: 401 everywhere but signing in
    path = re.sub(r"\{[^}]+\}", "1", operation.path)
    match = resolve(path, urlconf=django_settings.ROOT_URLCONF)
    view = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    perm = required_permission_for(view, operation.method.upper())
    return perm is not None and not role_has(role, perm)


MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Examples per operation and pass, bounded for CI. To dig deeper locally:
# PARLEY_FUZZ_EXAMPLES=50 PARLEY_FUZZ_RANDOM=1 (new inputs each run instead of the same ones).
# Anonymous callers, and roles the policy table refuses an operation, are turned away
# before any input is read (the test checks they are: 401, 403): a few examples suffice.
# Every operation still gets DEFAULT_EXAMPLES per pass from each role it allows (owner:
# all of them), and the role matrix checks every refusal with a valid request.
DEFAULT_EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "5"))
ANONYMOUS_EXAMPLES = 3
REFUSED_EXAMPLES = 1


def _examples(role: str, refused: bool) -> int:
    if role == "anonymous":
        return ANONYMOUS_EXAMPLES
    return REFUSED_EXAMPLES if refused else DEFAULT_EXAMPLES


def _fuzz(operation, mode, headers, role, path_parameters=None) -> None:
    refused = _refused(role, operation)

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=_examples(role, refused),
        deadline=None,
        derandomize=not os.environ.get("PARLEY_FUZZ_RANDOM"),
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report the first failure
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        connection.set_schema_to_public()
        response = case.call(base_url=BASE_URL, headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)
        if role == "anonymous" and case.operation.path not in PUBLIC and _routed(response):
            assert response.status_code == 401, f"anonymous got {response.status_code}"
        if refused and _routed(response):
            assert response.status_code == 403, f"{role} (refused) got {response.status_code}"

    run()


def test_it_answers_every_role_within_the_schema(api_schema, caller, known_ids):
    role, headers = caller
    failures = []
    # Deleting comes last: an object deleted early would turn the rest into 404s.
    operations = sorted(
        (result.ok() for result in api_schema.get_all_operations()),
        key=lambda operation: operation.method.upper() == "DELETE",
    )
    for operation in operations:
        names = [p.name for p in operation.path_parameters]
        passes = [(mode, None) for mode in (MODES if role != "anonymous" else MODES[:1])]
        if names:
            passes.append((GenerationMode.POSITIVE, {n: known_ids[n] for n in names}))
        for mode, path_parameters in passes:
            # Each operation starts with fresh counters: the sign-in endpoints' per-address
            # limit would otherwise answer 429 to everything after the first few.
            support.clear_rate_counters()
            try:
                _fuzz(operation, mode, headers, role, path_parameters)
            except Exception as exc:  # noqa: BLE001 - collected, reported together below
                where = " (known ids)" if path_parameters else ""
                failures.append(f"--- {role} {operation.label} ({mode.value}{where}):\n{exc}")
    assert not failures, "\n\n".join(failures)
