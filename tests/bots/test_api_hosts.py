"""The allow-list of hosts bot HTTP-request nodes may call: kept by connectors.manage
(owner, admin, integrator), never by a marketer; hosts normalised; private addresses
refused; publish validation follows the list."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from bots import services
from bots.models import AllowedHost
from tests import support
from tests.bots.api_support import actions, call, client, in_acme

pytestmark = pytest.mark.django_db

HOSTS = "/api/v1/bot-hosts/"


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("api.example.com", "api.example.com"),
        ("  API.Example.COM. ", "api.example.com"),
        ("https://api.example.com/v1/orders?x=1", "api.example.com"),
        ("Bücher.example", "xn--bcher-kva.example"),
        ("https://[2606:4700:4700::1111]/", "2606:4700:4700::1111"),
        ("8.8.8.8", "8.8.8.8"),
    ],
)
def test_it_normalises_hosts(raw, stored):
    assert services.host_normalise(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "localhost",
        "printer.local",
        "db.internal",
        "intranet",
        "api.example.com:8443",
        "user@api.example.com",
        "ftp://api.example.com",
        "api.example.com/path",
        "-bad-.example",
        "a" * 64 + ".example",
        "1.2.3.4.5",
        "exa mple.com",
        "x\x00.example",
        "\ud800.example",
        42,
        None,
        ["api.example.com"],
    ],
)
def test_it_refuses_what_is_not_a_public_host_name(raw):
    with pytest.raises(ValidationError):
        services.host_normalise(raw)


@override_settings(PARLEY_OUTBOUND_ALLOW_PRIVATE=False, PARLEY_OUTBOUND_ALLOWED_NETWORKS=[])
@pytest.mark.parametrize(
    "raw", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "[::1]", "::ffff:10.0.0.1"]
)
def test_it_refuses_private_loopback_and_link_local_addresses(raw):
    with pytest.raises(ValidationError):
        services.host_normalise(raw)


@pytest.mark.parametrize("role", ["owner", "admin", "integrator"])
def test_connectors_managers_add_list_and_remove_hosts(acme, role):
    c = client(acme, role)
    added = call(c, "POST", HOSTS, {"host": "https://API.shop.example/x", "note": "orders"})
    assert added.status_code == 201, added.content
    assert added.json()["host"] == "api.shop.example"
    assert [h["host"] for h in call(c, "GET", HOSTS).json()["results"]] == ["api.shop.example"]
    again = call(c, "POST", HOSTS, {"host": "api.shop.example"})
    assert again.status_code == 400 and again.json()["code"] == "invalid"
    gone = call(c, "DELETE", HOSTS, None, QUERY_STRING="host=API.shop.example")
    assert gone.status_code == 204
    assert call(c, "DELETE", HOSTS, {"host": "api.shop.example"}).status_code == 404
    assert actions(acme, "bot_host.") == ["bot_host.added", "bot_host.removed"]


@pytest.mark.parametrize("role", ["marketer", "agent", "analyst"])
def test_a_marketer_cannot_open_a_way_out(acme, role):
    c = client(acme, role)
    for method, body in [("GET", None), ("POST", {"host": "evil.example"})]:
        response = call(c, method, HOSTS, body)
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert call(c, "DELETE", HOSTS, {"host": "evil.example"}).status_code == 403
    assert in_acme(acme, lambda: AllowedHost.objects.count()) == 0


def test_changing_the_list_needs_a_fresh_one_time_code(acme):
    c = support.signed_in(acme, "admin@acme.test", step_up=False)
    response = call(c, "POST", HOSTS, {"host": "api.shop.example"})
    assert response.status_code == 403 and response.json()["code"] == "step_up_required"
    assert call(c, "GET", HOSTS).status_code == 200
    assert in_acme(acme, lambda: AllowedHost.objects.count()) == 0


HTTP_FLOW = {
    "nodes": [
        {"id": "start", "type": "start", "config": {}},
        {
            "id": "lookup",
            "type": "http",
            "config": {"method": "GET", "url": "https://api.shop.example/orders"},
        },
    ],
    "edges": [{"from": "start", "port": "next", "to": "lookup"}],
}


def test_publish_validation_follows_the_list(acme):
    marketer, admin = client(acme), client(acme, "admin")
    flow = call(marketer, "POST", "/api/v1/flows/", {"name": "Orders"}).json()
    call(marketer, "PUT", f"/api/v1/flows/{flow['id']}/draft/", {"graph": HTTP_FLOW})
    refused = call(marketer, "POST", f"/api/v1/flows/{flow['id']}/publish/", {})
    assert refused.status_code == 400
    assert [(p["node"], p["code"]) for p in refused.json()["problems"]] == [
        ("lookup", "http_host_not_allowed")
    ]
    assert call(admin, "POST", HOSTS, {"host": "api.shop.example"}).status_code == 201
    assert call(marketer, "POST", f"/api/v1/flows/{flow['id']}/publish/", {}).status_code == 200
    # Taken off the list: rolling back to that version is refused (fail closed).
    assert call(admin, "DELETE", HOSTS, {"host": "api.shop.example"}).status_code == 204
    rollback = call(marketer, "POST", f"/api/v1/flows/{flow['id']}/rollback/", {"number": 1})
    assert rollback.status_code == 400 and rollback.json()["code"] == "flow_invalid"
