"""Cross-tenant API matrix, generated from the URL conf: every API endpoint is
called at tenant B's host (globex) with ids of tenant A's objects (acme),

* with a valid token of A: 401 (the token is bound to A's audience and key);
* with a valid token of B's owner (every permission): 404 for A's ids;

and no response carries any of A's data.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import TOTPDevice
from bots.models import Flow, FlowVersion, KnowledgeArticle
from connectors import services as connector_services
from connectors.ai.services import ai_provider_create
from connectors.channels import channel_create
from connectors.models import AiProvider, Channel, Credential
from conversations.models import Contact, Conversation, Inbox
from tests import support
from tests.security.test_role_matrix import HOW_TO_CALL, _kwarg_names

MARK = "xtenant-marker-7f3a"
# Not data endpoints: signing in and out, and the API's own description.
NOT_DATA = {"api:token", "api:token-refresh", "api:token-revoke"}
API_ROUTES = sorted(n for n in HOW_TO_CALL if n.startswith("api:") and n not in NOT_DATA)

pytestmark = pytest.mark.django_db


def _token(tenant, email) -> str:
    with tenant_context(tenant):
        user = get_user_model().objects.get(email=email)
        device = TOTPDevice.objects.create(user=user, name="xt", confirmed=True)
    connection.set_schema_to_public()
    response = support.tenant_client(tenant.slug).post(
        "/api/v1/auth/token/",
        {"username": email, "password": support.PASSWORD, "otp": support.totp_now(device)},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["access"]


def _acme_objects(acme, globex) -> dict:
    """Objects of A whose ids do not exist in B (so a 200 could only be a leak)."""
    User = get_user_model()
    with tenant_context(globex):
        top = {
            "user": User.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
            "inbox": Inbox.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
            "credential": Credential.objects.order_by("-pk").values_list("pk", flat=True).first()
            or 0,
            "conversation": Conversation.objects.order_by("-pk")
            .values_list("pk", flat=True)
            .first()
            or 0,
            "flow": Flow.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
            "article": KnowledgeArticle.objects.order_by("-pk").values_list("pk", flat=True).first()
            or 0,
        }
    with tenant_context(acme):
        user = User.objects.create_user(
            id=top["user"] + 1000,
            username=f"{MARK}@acme.test",
            email=f"{MARK}@acme.test",
            role="agent",
        )
        inbox = Inbox.objects.create(id=top["inbox"] + 1000, name=f"{MARK} inbox")
        conversation = Conversation.objects.create(
            id=top["conversation"] + 1000,
            inbox=inbox,
            contact=Contact.objects.create(attributes={"marker": MARK}),
            labels=[MARK[:40]],
            last_activity_at=timezone.now(),
        )
        credential = connector_services.credential_set(
            name=f"{MARK}-cred", kind="api_key", connector="hubspot", secret=f"{MARK}-secret"
        )
        while credential.pk <= top["credential"]:
            credential = connector_services.credential_set(
                name=f"{MARK}-cred-{credential.pk}",
                kind="api_key",
                connector="hubspot",
                secret=f"{MARK}-secret",
            )

        with tenant_context(globex):
            top_channel = Channel.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        channel, _ = channel_create(
            by=User.objects.get(email="owner@acme.test"),
            name=f"{MARK} channel",
            outbound_url="https://x.example/",
        )
        assert channel.pk > top_channel

        with tenant_context(globex):
            top_provider = (
                AiProvider.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            )
        provider = ai_provider_create(
            by=User.objects.get(email="owner@acme.test"),
            name=f"{MARK} provider",
            base_url="http://127.0.0.1:9/v1",
            model="xtenant-model",
            api_key=f"sk-{MARK}",
        )
        assert provider.pk > top_provider
        flow = Flow.objects.create(id=top["flow"] + 1000, name=f"{MARK} flow")
        version = FlowVersion.objects.create(
            flow=flow,
            number=1,
            status=FlowVersion.Status.PUBLISHED,
            graph={"nodes": [{"id": "start", "type": "start", "config": {}}], "edges": []},
        )
        Flow.objects.filter(pk=flow.pk).update(live_version=version)
        article = KnowledgeArticle.objects.create(
            id=top["article"] + 1000, title=f"{MARK} article", body=MARK
        )
    connection.set_schema_to_public()
    return {
        "channel_id": channel.pk,
        "provider_id": provider.pk,
        "user_id": user.pk,
        "inbox_id": inbox.pk,
        "credential_id": credential.pk,
        "conversation_id": conversation.pk,
        "flow_id": flow.pk,
        "number": 1,
        "article_id": article.pk,
    }


def test_every_api_route_is_covered():
    assert API_ROUTES, "no API routes found"
    assert all(n in HOW_TO_CALL for n in API_ROUTES)


@pytest.mark.parametrize("name", API_ROUTES)
def test_tenant_b_never_serves_tenant_a(acme, globex, name):
    # Two API sign-ins per route: past ~30 routes the per-address sign-in limit answers 429.
    support.clear_rate_counters()
    ids = _acme_objects(acme, globex)
    a_token = _token(acme, "owner@acme.test")
    b_token = _token(globex, "owner@globex.test")
    kwargs = {key: ids[key] for key in _kwarg_names(name)}
    url = reverse(name, urlconf="parley.urls", kwargs=kwargs or None)
    method, _, data = HOW_TO_CALL[name]
    client = support.tenant_client("globex")

    def call(token):
        payload = {k: v for k, v in data.items() if not str(v).startswith("@")}
        auth = {"HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_PARLEY_OTP": ""}
        if method == "PUT":
            return client.put(url, payload, content_type="application/json", **auth)
        send = client.get if method == "GET" else client.post
        return send(url, payload if method == "POST" else None, **auth)

    with_a = call(a_token)
    assert with_a.status_code == 401, f"{url} with A's token at B: {with_a.status_code}"
    assert MARK.encode() not in with_a.content

    with_b = call(b_token)
    assert MARK.encode() not in with_b.content, f"{url} leaked A's data at B"
    assert b"@acme.test" not in with_b.content
    if kwargs:
        assert with_b.status_code == 404, f"{url} (A's ids) at B: {with_b.status_code}"
    else:
        assert with_b.status_code < 500
