"""Meta channels from the channels page and the REST API: own app (write-only
secrets, never shown back) or the platform's shared app (the account id only),
behind step-up, audited, listed with their webhook URL, kind and health."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from connectors import channels, health
from connectors.models import Channel
from conversations import access
from parley.base_url import console_url
from tenants.models import ChannelRoute
from tests import support
from tests.fakes.graph import FakeGraph

pytestmark = pytest.mark.django_db

SECRETS = {
    "app_secret": "own-app-secret-AAAA1111",
    "verify_token": "own-verify-token-BBBB2222",
    "access_token": "EAAG-own-access-token-CCCC3333",
}
SHARED = override_settings(
    PARLEY_META_SHARED_APP=True,
    PARLEY_META_APP_SECRET="platform-secret",
    PARLEY_META_VERIFY_TOKEN="platform-verify",
)


def _inbox(tenant, name="Meta inbox"):
    with tenant_context(tenant):
        admin = get_user_model().objects.get(email=f"admin@{tenant.slug}.test")
        inbox = access.inbox_create(by=admin, name=name)
    connection.set_schema_to_public()
    return inbox


def test_an_integrator_creates_a_whatsapp_channel_over_the_api_and_never_sees_its_secrets(acme):
    inbox = _inbox(acme)
    client = support.signed_in(acme, "integrator@acme.test")
    created = client.post(
        "/api/v1/channels/",
        {
            "name": "WhatsApp shop",
            "kind": "whatsapp",
            "settings": {"phone_number_id": "106540352242922"},
            "secrets": SECRETS,
            "inbox_id": inbox.pk,
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["kind"] == "whatsapp" and body["meta_app"] == "own"
    assert body["routing_id"] == "106540352242922" and body["health"] == "unknown"
    assert body["webhook_url"] == f"http://acme.localhost/webhooks/whatsapp/{body['public_id']}/"
    assert body["secret_hints"] == {role: value[-4:] for role, value in SECRETS.items()}
    later = [
        created,
        client.get("/api/v1/channels/"),
        client.get("/connectors/channels/"),
        support.signed_in(acme, "owner@acme.test").get("/audit/"),
    ]
    for response in later:
        assert response.status_code == 200 or response is created
        for secret in SECRETS.values():
            assert secret.encode() not in response.content
    page = " ".join(later[2].content.decode().split())
    assert "<h1>Channels</h1>" in page and "WhatsApp shop" in page
    assert f"/webhooks/whatsapp/{body['public_id']}/" in page and "Own Meta app · verify token ••••2222" in page
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="channel.created", target_id=str(body["id"]))
        assert Channel.objects.get(pk=body["id"]).inbox.pk == inbox.pk


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"kind": "whatsapp", "settings": {"phone_number_id": "1"}}, "app_secret"),
        (
            {"kind": "whatsapp", "settings": {"phone_number_id": "²"}, "secrets": SECRETS},
            "phone_number_id",
        ),
        ({"kind": "whatsapp", "settings": {"phone_number_id": 5}, "secrets": SECRETS}, None),
        ({"kind": "whatsapp", "settings": ["x"], "secrets": SECRETS}, None),
        ({"kind": "telegram", "settings": {}, "secrets": SECRETS}, "kind"),
        ({"kind": "whatsapp", "settings": {"page_id": "1"}, "secrets": SECRETS}, None),
        (
            {
                "kind": "whatsapp",
                "settings": {"phone_number_id": "1", "meta_app": "shared"},
                "secrets": SECRETS,
            },
            None,
        ),
        ({"kind": "whatsapp", "settings": {"phone_number_id": "1\x00"}, "secrets": SECRETS}, None),
    ],
)
def test_hostile_meta_channel_bodies_are_400_and_create_nothing(acme, payload, field):
    inbox = _inbox(acme)
    client = support.signed_in(acme, "integrator@acme.test")
    response = client.post(
        "/api/v1/channels/",
        {"name": "Hostile", "inbox_id": inbox.pk, **payload},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert isinstance(response.json()["code"], str)
    if field:
        assert field in str(response.json())
    with tenant_context(acme):
        assert not Channel.objects.filter(name="Hostile").exists()


@SHARED
def test_an_admin_connects_a_shared_app_channel_on_the_page(acme, settings):
    _inbox(acme)
    client = support.signed_in(acme, "admin@acme.test")
    page = client.get("/connectors/channels/").content.decode()
    assert "The platform&#x27;s shared app" in page or "The platform's shared app" in page
    form = {
        "meta-name": "IG shop",
        "meta-kind": "instagram",
        "meta-meta_app": "shared",
        "meta-routing_id": "17841400000000",
        "meta-access_token": "EAAG-acme-ig",
        "meta-inbox": "",
    }
    with FakeGraph(owners={"17841400000000": "EAAG-the-owner"}) as graph:
        settings.PARLEY_META_GRAPH_BASE_URL = graph.base_url
        # A token that does not reach the account: refused on the form, nothing stored.
        refused = client.post("/connectors/channels/meta/", form)
        assert refused.status_code == 400
        assert "did not confirm that this access token reaches this account" in (
            refused.content.decode().replace("&#x27;", "'")
        )
        with tenant_context(acme):
            assert not Channel.objects.filter(name="IG shop").exists()
        graph.owners["17841400000000"] = "EAAG-acme-ig"
        response = client.post("/connectors/channels/meta/", form)
    assert response.status_code == 302, response.content[:500]
    html = " ".join(client.get("/connectors/channels/").content.decode().split())
    assert "IG shop" in html and f"{console_url('/webhooks/meta/instagram/')}</code>" in html
    assert "nothing to set up in Meta" in html
    route = ChannelRoute.objects.get(kind="instagram", routing_id="17841400000000")
    assert route.tenant.slug == "acme"
    with tenant_context(acme):
        channel = Channel.objects.get(name="IG shop")
        # Only the access token is kept: the platform signs and verifies its events.
        assert channels.channel_is_shared(channel)
        assert list(channel.credential_links.values_list("role", flat=True)) == ["access_token"]
        event = AuditEvent.objects.get(action="channel.created", target_id=str(channel.pk))
        assert event.details["routing_id"] == "17841400000000"


def test_an_own_app_channel_needs_its_secrets_on_the_page(acme):
    _inbox(acme)
    client = support.signed_in(acme, "admin@acme.test")
    response = client.post(
        "/connectors/channels/meta/",
        {
            "meta-name": "WA",
            "meta-kind": "whatsapp",
            "meta-meta_app": "own",
            "meta-routing_id": "1065",
            "meta-app_secret": "only-this",
            "meta-inbox": "",
        },
    )
    assert response.status_code == 400
    with tenant_context(acme):
        assert not Channel.objects.filter(name="WA").exists()


def test_meta_channel_creation_needs_step_up_and_the_permission(acme):
    _inbox(acme)
    data = {"meta-name": "X", "meta-kind": "whatsapp", "meta-routing_id": "1"}
    stale = support.signed_in(acme, "integrator@acme.test", step_up=False)
    response = stale.post("/connectors/channels/meta/", data)
    assert response.status_code == 302 and response["Location"].startswith("/mfa/step-up/")
    api = stale.post(
        "/api/v1/channels/",
        {"name": "X", "kind": "whatsapp", "settings": {"phone_number_id": "1"}, "secrets": SECRETS},
        content_type="application/json",
    )
    assert api.status_code == 403 and api.json()["code"] == "step_up_required"
    agent = support.signed_in(acme, "agent@acme.test")
    assert agent.post("/connectors/channels/meta/", data).status_code == 403
    with tenant_context(acme):
        assert not Channel.objects.filter(name="X").exists()


# --- Test connection ------------------------------------------------------------------------------


def _own_channel(tenant, graph_base_url: str, kind="whatsapp", routing="phone_number_id"):
    with tenant_context(tenant):
        admin = get_user_model().objects.get(email=f"admin@{tenant.slug}.test")
        channel, _ = channels.channel_create(
            by=admin,
            name=f"Tested {kind}",
            kind=kind,
            settings={routing: "106540352242922", "graph_base_url": graph_base_url},
            secrets_given=SECRETS,
        )
    connection.set_schema_to_public()
    return channel


def test_test_connection_asks_graph_with_the_token_and_records_health(acme, caplog):
    caplog.set_level("DEBUG")
    with FakeGraph(token=SECRETS["access_token"]) as graph:
        channel = _own_channel(acme, graph.base_url)
        client = support.signed_in(acme, "admin@acme.test")
        graph.answer(200, {"id": "106540352242922", "display_phone_number": "15550783881"})
        ok = client.post(f"/connectors/channels/{channel.pk}/test/")
        assert ok.status_code == 302
        request = graph.requests[-1]
        assert (request.method, request.path) == ("GET", "/v21.0/106540352242922")
        assert request.headers["authorization"] == f"Bearer {SECRETS['access_token']}"
        with tenant_context(acme):
            assert Channel.objects.get(pk=channel.pk).health == "ok"
        graph.fail("expired_token")
        failed = client.post(f"/connectors/channels/{channel.pk}/test/", follow=True)
        # The admin reads what to do, not only a code.
        assert "the test failed. Meta refused the access token" in failed.content.decode()
        with tenant_context(acme):
            refused = Channel.objects.get(pk=channel.pk)
            assert (refused.health, refused.last_error_code) == ("auth_failed", "auth_failed")
            tests = AuditEvent.objects.filter(action="channel.tested", target_id=str(channel.pk))
            assert [e.details["code"] for e in tests.order_by("id")] == ["ok", "auth_failed"]
            assert [e.outcome for e in tests.order_by("id")] == ["allowed", "failed"]
            trail = " ".join(str(e.details) for e in AuditEvent.objects.all())
    page = client.get("/connectors/channels/").content.decode()
    assert "Test connection" in page and "Credentials refused" in page
    assert "Meta refused the access token: replace it on the Credentials page." in page
    assert 'href="/connectors/credentials/"' in page
    for secret in SECRETS.values():
        assert secret not in trail and secret not in caplog.text and secret not in page


def test_messenger_is_tested_on_me_and_an_unreachable_graph_is_failing(acme):
    with FakeGraph(token=SECRETS["access_token"]) as graph:
        channel = _own_channel(acme, graph.base_url, kind="messenger", routing="page_id")
        graph.answer(200, {"id": "106540352242922", "name": "Shop"})
        with tenant_context(acme):
            admin = get_user_model().objects.get(email="admin@acme.test")
            assert channels.channel_test_connection(by=admin, channel=channel).ok
        assert graph.requests[-1].path == "/v21.0/me"
        base = graph.base_url
    # The server is gone: no answer at all.
    with tenant_context(acme):
        assert channel.settings["graph_base_url"] == base
        result = channels.channel_test_connection(by=admin, channel=channel)
        assert (result.ok, result.code) == (False, "network_error")
        assert Channel.objects.get(pk=channel.pk).health == "failing"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("auth_failed", "Meta refused the access token"),
        ("network_error", "could not reach Meta"),
        ("vendor_131031", "Meta reported an error for this account (code 131031)."),
        ("vendor_error", "Meta reported an error for this account."),
        ("vendor_²", "Meta reported an error for this account."),
        ("something_new", "The last attempt failed."),
    ],
)
def test_a_channel_error_code_is_said_in_words(code, words):
    assert words in health.error_text(code)
