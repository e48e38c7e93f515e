"""The platform's shared Meta app: one URL on the platform host, the platform's
secret, a batch split by account id and each part stored only in the tenant that
connected that account (tenants.ChannelRoute)."""

from __future__ import annotations

import copy
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from connectors import channels, inbound
from connectors.models import Channel, Credential, InboundEvent
from connectors.tasks import inbound_event_process
from conversations.models import Message
from tenants.models import ChannelRoute
from tests import support
from tests.connectors.meta.support import doc, signed
from tests.fakes.graph import FakeGraph

PLATFORM_SECRET = "platform-app-secret-for-tests"
PLATFORM_VERIFY = "platform-verify-token-for-tests"
SHARED = override_settings(
    PARLEY_META_SHARED_APP=True,
    PARLEY_META_APP_SECRET=PLATFORM_SECRET,
    PARLEY_META_VERIFY_TOKEN=PLATFORM_VERIFY,
)
URL = "/webhooks/meta/whatsapp/"


def _admin(tenant):
    return get_user_model().objects.get(email=f"admin@{tenant.slug}.test")


@pytest.fixture(autouse=True)
def graph(settings):
    """The Graph API the shared app's channels prove their accounts against."""
    with FakeGraph() as fake:
        settings.PARLEY_META_GRAPH_BASE_URL = fake.base_url
        _CURRENT["graph"] = fake
        yield fake
    _CURRENT.clear()


_CURRENT: dict[str, FakeGraph] = {}


def _token(tenant) -> str:
    return f"EAAG-{tenant.slug}-token"


def _shared_channel(tenant, phone_id: str, kind: str = "whatsapp", routing="phone_number_id"):
    # The account belongs to this tenant: Meta answers its token for that id.
    _CURRENT["graph"].owners[phone_id] = _token(tenant)
    with tenant_context(tenant):
        channel, shown = channels.channel_create(
            by=_admin(tenant),
            name=f"WA {phone_id}",
            kind=kind,
            settings={routing: phone_id, "meta_app": "shared"},
            secrets_given={"access_token": _token(tenant)},
        )
        assert shown == ""
    connection.set_schema_to_public()
    return channel


def _change(phone_id: str, wamid: str, text: str) -> dict:
    change = copy.deepcopy(doc("wa_webhook_text.json")["entry"][0]["changes"][0])
    change["value"]["metadata"]["phone_number_id"] = phone_id
    message = change["value"]["messages"][0]
    message["id"], message["text"]["body"] = wamid, text
    return change


def _batch(*entries: list[dict]) -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": f"waba{i}", "changes": changes} for i, changes in enumerate(entries)],
        }
    ).encode()


def _post(raw: bytes, headers: dict[str, str], url: str = URL):
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return support.console_client().post(url, data=raw, content_type="application/json", **extra)


def _events(tenant) -> list[tuple[str, bytes]]:
    with tenant_context(tenant):
        return [
            (e.channel.public_id, inbound.raw_of(e))
            for e in InboundEvent.objects.select_related("channel").order_by("id")
        ]


@pytest.mark.django_db
@SHARED
def test_a_batch_for_two_tenants_lands_each_part_only_in_its_own_tenant(acme, globex):
    ours = _shared_channel(acme, "111000111")
    theirs = _shared_channel(globex, "222000222")
    raw = _batch(
        [_change("111000111", "wamid.ACME1", "acme secret plan")],
        # One entry (one WABA) whose changes name both tenants' numbers.
        [
            _change("222000222", "wamid.GLOBEX1", "globex secret plan"),
            _change("111000111", "wamid.ACME2", "acme second"),
        ],
        [_change("999000999", "wamid.NOBODY", "nobody's")],
    )
    response = _post(raw, signed(raw, PLATFORM_SECRET))
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True, "stored": 2, "dropped": 1}
    assert "X-Frame-Options" not in response.headers  # a machine endpoint: no browser middleware

    acme_events, globex_events = _events(acme), _events(globex)
    assert [public_id for public_id, _ in acme_events] == [ours.public_id]
    assert [public_id for public_id, _ in globex_events] == [theirs.public_id]
    assert b"globex" not in acme_events[0][1] and b"999000999" not in acme_events[0][1]
    assert b"acme" not in globex_events[0][1] and b"999000999" not in globex_events[0][1]

    for tenant, expected in ((acme, {"wamid.ACME1", "wamid.ACME2"}), (globex, {"wamid.GLOBEX1"})):
        with tenant_context(tenant):
            for event in InboundEvent.objects.all():
                assert inbound_event_process.apply(args=(event.pk,)).get()["outcome"] == "processed"
            stored = Message.objects.filter(direction="in").values_list("external_id", flat=True)
            assert set(stored) == expected

    # The unknown account is counted once in the platform's trail, not stored anywhere.
    connection.set_schema_to_public()
    unrouted = AuditEvent.objects.filter(action="channel.shared_webhook_unrouted").get()
    assert unrouted.details["unknown"] == 1 and unrouted.details["routing_ids"] == ["999000999"]

    # Meta retries the same batch: nothing is stored twice.
    assert _post(raw, signed(raw, PLATFORM_SECRET)).status_code == 200
    assert len(_events(acme)) == 1 and len(_events(globex)) == 1


@pytest.mark.django_db
@SHARED
def test_a_bad_signature_is_401_and_stores_nothing(acme):
    _shared_channel(acme, "111000111")
    raw = _batch([_change("111000111", "wamid.X", "hi")])
    for headers, code in (
        (signed(raw, "the-tenants-own-secret"), "signature_invalid"),
        ({}, "signature_missing"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "signature_invalid"),
    ):
        response = _post(raw, headers)
        assert response.status_code == 401 and response.json()["code"] == code
    assert _events(acme) == []
    connection.set_schema_to_public()
    assert AuditEvent.objects.filter(action="channel.shared_webhook_refused").count() == 3


@pytest.mark.django_db
@SHARED
def test_an_unknown_or_paused_account_stores_nothing(acme):
    channel = _shared_channel(acme, "111000111")
    raw = _batch([_change("555000555", "wamid.U", "hi")])
    response = _post(raw, signed(raw, PLATFORM_SECRET))
    assert response.status_code == 200 and response.json()["stored"] == 0
    assert _events(acme) == []

    with tenant_context(acme):
        channels.channel_set_enabled(by=_admin(acme), channel=channel, enabled=False)
    connection.set_schema_to_public()
    assert ChannelRoute.objects.get(routing_id="111000111").enabled is False
    raw = _batch([_change("111000111", "wamid.P", "while paused")])
    assert _post(raw, signed(raw, PLATFORM_SECRET)).json()["stored"] == 0
    assert _events(acme) == []


@pytest.mark.django_db
@SHARED
def test_the_handshake_uses_the_platform_verify_token(acme):
    client = support.console_client()
    good = {
        "hub.mode": "subscribe",
        "hub.verify_token": PLATFORM_VERIFY,
        "hub.challenge": "1158201444",
    }
    response = client.get(URL, good)
    assert response.status_code == 200 and response.content == b"1158201444"
    assert response["Content-Type"].startswith("text/plain")
    for token in ("verify-token-for-tests", "", PLATFORM_VERIFY + "x"):
        response = client.get(URL, {**good, "hub.verify_token": token})
        assert response.status_code == 403 and response.json()["code"] == "challenge_refused"


@pytest.mark.django_db
def test_the_shared_url_is_404_while_the_shared_app_is_off(acme):
    raw = _batch([_change("111000111", "wamid.X", "hi")])
    with override_settings(PARLEY_META_SHARED_APP=False, PARLEY_META_APP_SECRET=PLATFORM_SECRET):
        response = _post(raw, signed(raw, PLATFORM_SECRET))
        assert response.status_code == 404
        with tenant_context(acme), pytest.raises(ValidationError):
            channels.channel_create(
                by=_admin(acme),
                name="WA off",
                kind="whatsapp",
                settings={"phone_number_id": "1", "meta_app": "shared"},
            )


@pytest.mark.django_db
@SHARED
def test_an_account_routes_to_one_tenant_only(acme, globex, graph):
    _shared_channel(acme, "111000111")
    # Even with a token that reaches the account (say, both businesses were given
    # access), the first workspace keeps the route.
    graph.owners["111000111"] = _token(globex)
    with tenant_context(globex), pytest.raises(ValidationError) as raised:
        channels.channel_create(
            by=_admin(globex),
            name="Squatter",
            kind="whatsapp",
            settings={"phone_number_id": "111000111", "meta_app": "shared"},
            secrets_given={"access_token": _token(globex)},
        )
    assert "routing_id" in raised.value.message_dict
    with tenant_context(globex):
        assert not Channel.objects.filter(name="Squatter").exists()  # rolled back with the route
    connection.set_schema_to_public()
    route = ChannelRoute.objects.get(kind="whatsapp", routing_id="111000111")
    assert route.tenant.slug == "acme"


@pytest.mark.django_db
@SHARED
def test_a_bad_body_is_400_and_stores_nothing(acme):
    _shared_channel(acme, "111000111")
    for raw in (b"{", b'{"object": "page", "entry": []}', b'{"a": 1, "a": 2}'):
        response = _post(raw, signed(raw, PLATFORM_SECRET))
        assert response.status_code == 400, raw
        assert isinstance(response.json()["code"], str)
    assert _events(acme) == []


@pytest.mark.django_db
@SHARED
def test_messenger_entries_are_routed_by_page_id(acme, globex):
    _shared_channel(acme, "PAGE1", kind="messenger", routing="page_id")
    _shared_channel(globex, "PAGE2", kind="messenger", routing="page_id")
    template = doc("messenger_webhook_text.json")["entry"][0]
    entries = []
    for page, mid in (("PAGE1", "mid.a"), ("PAGE2", "mid.b")):
        entry = copy.deepcopy(template)
        entry["id"] = page
        entry["messaging"][0]["recipient"]["id"] = page
        entry["messaging"][0]["message"]["mid"] = mid
        entries.append(entry)
    raw = json.dumps({"object": "page", "entry": entries}).encode()
    response = _post(raw, signed(raw, PLATFORM_SECRET), url="/webhooks/meta/messenger/")
    assert response.status_code == 200 and response.json()["stored"] == 2
    assert b"mid.b" not in _events(acme)[0][1] and b"mid.a" not in _events(globex)[0][1]


@pytest.mark.django_db
@SHARED
def test_a_suspended_tenant_or_a_route_its_channel_disowns_gets_nothing(acme, globex):
    channel = _shared_channel(acme, "111000111")
    # A route naming acme's channel for an account that channel does not hold.
    ChannelRoute.objects.create(
        kind="whatsapp", routing_id="777000777", tenant=acme, channel_public_id=channel.public_id
    )
    raw = _batch([_change("777000777", "wamid.F", "forged")])
    assert _post(raw, signed(raw, PLATFORM_SECRET)).json() == {
        "ok": True,
        "stored": 0,
        "dropped": 1,
    }
    assert _events(acme) == []

    type(acme).objects.filter(pk=acme.pk).update(status="suspended")
    raw = _batch([_change("111000111", "wamid.S", "while suspended")])
    assert _post(raw, signed(raw, PLATFORM_SECRET)).json()["stored"] == 0
    assert _events(acme) == []


@pytest.mark.django_db
@SHARED
@pytest.mark.parametrize("given", ["its own token", "no token", "graph down"])
def test_a_workspace_cannot_claim_an_account_its_token_does_not_reach(acme, graph, settings, given):
    """Claiming first is not enough: Meta must confirm that the workspace's own
    token reaches the account, or no channel, route or credential is stored."""
    graph.owners["333000333"] = "EAAG-the-real-owner"
    secrets_given = {"access_token": _token(acme)} if given != "no token" else {}
    if given == "graph down":
        graph.owners["333000333"] = _token(acme)
        settings.PARLEY_META_GRAPH_BASE_URL = "http://127.0.0.1:9"  # nothing listens
    with tenant_context(acme), pytest.raises(ValidationError) as raised:
        channels.channel_create(
            by=_admin(acme),
            name="Squatter",
            kind="whatsapp",
            settings={"phone_number_id": "333000333", "meta_app": "shared"},
            secrets_given=secrets_given,
        )
    errors = raised.value.message_dict
    assert ("access_token" if given == "no token" else "phone_number_id") in errors
    assert "EAAG" not in str(errors)
    with tenant_context(acme):
        assert not Channel.objects.filter(name="Squatter").exists()
        assert not Credential.objects.filter(connector="whatsapp").exists()
        refused = AuditEvent.objects.filter(action="channel.route_refused")
        assert refused.count() == (1 if given == "its own token" else 0)
        if given == "its own token":
            details = refused.get().details
            assert details["routing_id"] == "333000333" and "EAAG" not in str(details)
    if given == "its own token":
        asked = [r for r in graph.requests if r.method == "GET"]
        assert asked and asked[-1].path.endswith("/333000333?fields=id")
        assert asked[-1].headers["authorization"] == f"Bearer {_token(acme)}"
    connection.set_schema_to_public()
    assert not ChannelRoute.objects.filter(routing_id="333000333").exists()
