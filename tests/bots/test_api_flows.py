"""The flows API: CRUD, the draft (autosave, conflicts), validate, publish, rollback,
versions and their diff, roles, and that every change is audited."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import TOTPDevice
from bots.models import Flow, FlowRun, FlowVersion
from conversations import access
from conversations.models import Contact, Conversation, Inbox
from tests import support
from tests.bots.api_support import GOOD, UNREACHABLE, actions, call, client, in_acme

pytestmark = pytest.mark.django_db

FLOWS = "/api/v1/flows/"


def _create(c, name="Greeter", **fields):
    response = call(c, "POST", FLOWS, {"name": name, **fields})
    assert response.status_code == 201, response.content
    return response.json()


def _save(c, flow_id, graph, **extra):
    return call(c, "PUT", f"{FLOWS}{flow_id}/draft/", {"graph": graph, **extra})


def test_it_creates_a_flow_with_a_draft_v1_holding_one_start_node(acme):
    c = client(acme)
    flow = _create(c, description="Says hello", keywords=["Hello", "hello"])
    assert flow["name"] == "Greeter" and flow["trigger"] == "new_conversation"
    assert flow["keywords"] == ["hello"]
    assert flow["live_version"] is None
    assert flow["draft"]["number"] == 1
    draft = call(c, "GET", f"{FLOWS}{flow['id']}/draft/").json()
    assert [n["type"] for n in draft["graph"]["nodes"]] == ["start"]
    assert draft["graph"]["edges"] == []
    assert actions(acme, "flow.") == ["flow.created"]


def test_it_lists_gets_updates_and_deletes_flows(acme):
    c = client(acme)
    flow = _create(c)
    inbox = in_acme(acme, lambda: _inbox(acme))
    listed = call(c, "GET", FLOWS).json()
    assert [f["name"] for f in listed["results"]] == ["Greeter"]
    assert listed["results"][0]["draft"]["number"] == 1
    response = call(
        c,
        "PATCH",
        f"{FLOWS}{flow['id']}/",
        {"name": "Welcome", "inboxes": [inbox], "trigger": "keyword", "keywords": ["hi"]},
    )
    assert response.status_code == 200, response.content
    assert response.json()["inboxes"] == [inbox]
    assert response.json()["trigger"] == "keyword"
    assert call(c, "GET", f"{FLOWS}{flow['id']}/").json()["name"] == "Welcome"
    assert call(c, "DELETE", f"{FLOWS}{flow['id']}/").status_code == 204
    assert call(c, "GET", f"{FLOWS}{flow['id']}/").status_code == 404
    assert actions(acme, "flow.") == ["flow.created", "flow.updated", "flow.deleted"]


def _inbox(acme):
    admin = get_user_model().objects.get(email="admin@acme.test")
    return access.inbox_create(by=admin, name="Bot inbox").pk


def test_it_refuses_inconsistent_triggers_and_duplicate_names(acme):
    c = client(acme)
    _create(c)
    dup = call(c, "POST", FLOWS, {"name": "greeter"})
    assert dup.status_code == 400 and dup.json()["code"] == "invalid"
    kw = call(c, "POST", FLOWS, {"name": "K", "trigger": "keyword"})
    assert kw.status_code == 400 and "keywords" in kw.json()["errors"]
    intent = call(c, "POST", FLOWS, {"name": "I", "trigger": "intent", "trigger_intent": "Bad!"})
    assert intent.status_code == 400
    assert in_acme(acme, lambda: Flow.objects.count()) == 1


def test_it_autosaves_an_invalid_draft_and_reports_its_problems(acme):
    c = client(acme)
    flow = _create(c)
    response = _save(c, flow["id"], UNREACHABLE)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["number"] == 1
    assert ("lost", "unreachable") in {(p["node"], p["code"]) for p in body["problems"]}
    stored = call(c, "GET", f"{FLOWS}{flow['id']}/draft/").json()
    assert {n["id"] for n in stored["graph"]["nodes"]} == {"start", "greet", "bye", "lost"}
    assert "flow.draft_saved" in actions(acme, "flow.")


def test_it_refuses_a_graph_that_does_not_parse_and_keeps_the_old_one(acme):
    c = client(acme)
    flow = _create(c)
    bad = {"nodes": [{"id": "x", "type": "teleport", "config": {}}], "edges": []}
    response = _save(c, flow["id"], bad)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "graph_invalid"
    assert body["problems"][0]["code"] == "node_unknown_type"
    assert body["problems"][0]["node"] == "x"
    draft = call(c, "GET", f"{FLOWS}{flow['id']}/draft/").json()
    assert [n["id"] for n in draft["graph"]["nodes"]] == ["start"]


def test_it_answers_a_stale_save_with_draft_conflict(acme):
    c = client(acme)
    flow = _create(c)
    loaded = call(c, "GET", f"{FLOWS}{flow['id']}/draft/").json()
    first = _save(c, flow["id"], GOOD, base_updated_at=loaded["updated_at"])
    assert first.status_code == 200, first.content
    stale = _save(c, flow["id"], UNREACHABLE, base_updated_at=loaded["updated_at"])
    assert stale.status_code == 409
    assert stale.json()["code"] == "draft_conflict"
    assert stale.json()["updated_at"]
    # The winner's graph stays; a save based on the fresh stamp goes through.
    draft = call(c, "GET", f"{FLOWS}{flow['id']}/draft/").json()
    assert len(draft["graph"]["nodes"]) == 3
    again = _save(c, flow["id"], UNREACHABLE, base_updated_at=first.json()["updated_at"])
    assert again.status_code == 200, again.content


def test_it_validates_the_draft_or_a_given_graph(acme):
    c = client(acme)
    flow = _create(c)
    _save(c, flow["id"], UNREACHABLE)
    draft = call(c, "POST", f"{FLOWS}{flow['id']}/validate/", {}).json()
    assert draft["ok"] is False and any(p["node"] == "lost" for p in draft["problems"])
    given = call(c, "POST", f"{FLOWS}{flow['id']}/validate/", {"graph": GOOD}).json()
    assert given == {"ok": True, "problems": []}


def test_it_refuses_to_publish_a_draft_with_problems(acme):
    c = client(acme)
    flow = _create(c)
    _save(c, flow["id"], UNREACHABLE)
    response = call(c, "POST", f"{FLOWS}{flow['id']}/publish/", {})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "flow_invalid"
    assert any(p["node"] == "lost" and p["code"] == "unreachable" for p in body["problems"])
    assert in_acme(acme, lambda: FlowVersion.objects.get(flow_id=flow["id"]).status) == "draft"
    assert "flow.published" not in actions(acme, "flow.")


def test_it_publishes_then_starts_the_next_draft_from_the_live_version(acme):
    c = client(acme)
    flow = _create(c)
    _save(c, flow["id"], GOOD)
    response = call(c, "POST", f"{FLOWS}{flow['id']}/publish/", {"note": "first"})
    assert response.status_code == 200, response.content
    version = response.json()["version"]
    assert version["number"] == 1 and version["status"] == "published"
    assert version["note"] == "first" and version["training"] == "none"
    detail = call(c, "GET", f"{FLOWS}{flow['id']}/").json()
    assert detail["live_version"]["number"] == 1 and detail["draft"] is None
    nothing = call(c, "POST", f"{FLOWS}{flow['id']}/publish/", {})
    assert nothing.status_code == 409 and nothing.json()["code"] == "nothing_to_publish"
    draft = call(c, "GET", f"{FLOWS}{flow['id']}/draft/").json()
    assert draft["number"] == 2
    assert draft["graph"] == call(c, "GET", f"{FLOWS}{flow['id']}/versions/1/").json()["graph"]
    assert actions(acme, "flow.")[-2:] == ["flow.published", "flow.draft_created"]


def _publish(c, flow_id, graph):
    assert _save(c, flow_id, graph).status_code == 200
    response = call(c, "POST", f"{FLOWS}{flow_id}/publish/", {})
    assert response.status_code == 200, response.content
    return response.json()["version"]


def test_publishing_archives_the_previous_version(acme):
    c = client(acme)
    flow = _create(c)
    _publish(c, flow["id"], GOOD)
    changed = {
        **GOOD,
        "nodes": [*GOOD["nodes"][:2], {**GOOD["nodes"][2], "config": {"text": "Ciao"}}],
    }
    v2 = _publish(c, flow["id"], changed)
    assert v2["number"] == 2
    versions = call(c, "GET", f"{FLOWS}{flow['id']}/versions/").json()
    assert [(v["number"], v["status"]) for v in versions] == [(2, "published"), (1, "archived")]


def test_rollback_publishes_a_new_version_with_the_old_graph(acme):
    c = client(acme)
    flow = _create(c)
    _publish(c, flow["id"], GOOD)
    changed = {
        **GOOD,
        "nodes": [*GOOD["nodes"][:2], {**GOOD["nodes"][2], "config": {"text": "Ciao"}}],
    }
    _publish(c, flow["id"], changed)
    call(c, "GET", f"{FLOWS}{flow['id']}/draft/")  # an open draft, v3
    response = call(c, "POST", f"{FLOWS}{flow['id']}/rollback/", {"number": 1})
    assert response.status_code == 201, response.content
    version = response.json()["version"]
    assert version["status"] == "published" and version["note"] == "rollback to v1"
    assert version["number"] == 3
    versions = call(c, "GET", f"{FLOWS}{flow['id']}/versions/").json()
    assert [(v["number"], v["status"]) for v in versions] == [
        (4, "draft"),
        (3, "published"),
        (2, "archived"),
        (1, "archived"),
    ]
    v1 = call(c, "GET", f"{FLOWS}{flow['id']}/versions/1/").json()["graph"]
    v3 = call(c, "GET", f"{FLOWS}{flow['id']}/versions/3/").json()["graph"]
    assert v1 == v3
    assert call(c, "GET", f"{FLOWS}{flow['id']}/").json()["live_version"]["number"] == 3
    assert "flow.rolled_back" in actions(acme, "flow.")
    missing = call(c, "POST", f"{FLOWS}{flow['id']}/rollback/", {"number": 99})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    to_draft = call(c, "POST", f"{FLOWS}{flow['id']}/rollback/", {"number": 4})
    assert to_draft.status_code == 400 and to_draft.json()["code"] == "rollback_to_draft"


def test_the_diff_names_nodes_keys_and_edges(acme):
    c = client(acme)
    flow = _create(c)
    _publish(c, flow["id"], GOOD)
    new = {
        "nodes": [
            GOOD["nodes"][0],
            {**GOOD["nodes"][1], "config": {"text": "Hello!", "buttons": ["Orders"]}},
            {"id": "human", "type": "handoff", "x": 1, "y": 2, "config": {}},
        ],
        "edges": [
            GOOD["edges"][0],
            {"from": "greet", "port": "next", "to": "human"},
        ],
    }
    assert _save(c, flow["id"], new).status_code == 200
    diff = call(c, "GET", f"{FLOWS}{flow['id']}/versions/1/diff/?against=draft").json()
    kinds = {(ch["kind"], ch["node"]) for ch in diff["changes"]}
    assert kinds == {("added", "human"), ("removed", "bye"), ("changed", "greet")}
    greet = next(ch for ch in diff["changes"] if ch["node"] == "greet")
    assert greet["detail"] == "changed buttons, text" and greet["type"] == "send"
    assert diff["edges_added"] == [{"from": "greet", "port": "next", "to": "human"}]
    assert diff["edges_removed"] == [{"from": "greet", "port": "next", "to": "bye"}]
    same = call(c, "GET", f"{FLOWS}{flow['id']}/versions/1/diff/?against=1").json()
    assert same["changes"] == [] and same["edges_added"] == same["edges_removed"] == []
    bad = call(c, "GET", f"{FLOWS}{flow['id']}/versions/1/diff/?against=٢")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"


def test_a_published_versions_graph_cannot_be_updated_even_with_raw_sql(acme):
    c = client(acme)
    flow = _create(c)
    version = _publish(c, flow["id"], GOOD)
    with tenant_context(acme):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "UPDATE bots_flowversion SET graph = %s::jsonb WHERE id = %s",
                ['{"nodes": [], "edges": []}', version["id"]],
            )
        # Archiving (a status move) is still allowed.
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE bots_flowversion SET status = 'archived' WHERE id = %s", [version["id"]]
            )
        assert FlowVersion.objects.get(pk=version["id"]).graph["nodes"][1]["id"] == "greet"
    connection.set_schema_to_public()


@pytest.mark.parametrize("role", ["agent", "analyst", "integrator"])
def test_roles_without_flows_edit_get_403_with_a_code(acme, role):
    owner_flow = _create(client(acme, "owner"))
    c = client(acme, role)
    for method, path, body in [
        ("GET", FLOWS, None),
        ("POST", FLOWS, {"name": "Nope"}),
        ("GET", f"{FLOWS}{owner_flow['id']}/", None),
        ("GET", f"{FLOWS}{owner_flow['id']}/draft/", None),
        ("PUT", f"{FLOWS}{owner_flow['id']}/draft/", {"graph": GOOD}),
        ("POST", f"{FLOWS}{owner_flow['id']}/publish/", {}),
        ("POST", f"{FLOWS}{owner_flow['id']}/simulate/", {"messages": ["hi"]}),
        ("GET", "/api/v1/articles/", None),
    ]:
        response = call(c, method, path, body)
        assert response.status_code == 403, (method, path, response.status_code)
        assert response.json()["code"] == "permission_denied"
    assert in_acme(acme, lambda: Flow.objects.count()) == 1


@pytest.mark.parametrize("role", ["marketer", "admin", "owner"])
def test_marketer_admin_and_owner_edit_flows(acme, role):
    c = client(acme, role)
    flow = _create(c, name=f"By {role}")
    assert _save(c, flow["id"], GOOD).status_code == 200
    assert call(c, "POST", f"{FLOWS}{flow['id']}/publish/", {}).status_code == 200


def test_an_anonymous_caller_gets_401(acme):
    response = support.tenant_client("acme").get(FLOWS)
    assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_the_session_needs_the_csrf_token_and_a_jwt_works_without(acme):
    c = Client(HTTP_HOST="acme.localhost", enforce_csrf_checks=True)
    support.signed_in(acme, "marketer@acme.test", client=c)
    c.get("/")  # the page sets the CSRF cookie
    refused = call(c, "POST", FLOWS, {"name": "No token"})
    assert refused.status_code == 403
    token = c.cookies[settings.CSRF_COOKIE_NAME].value
    ok = call(c, "POST", FLOWS, {"name": "With token"}, HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 201, ok.content

    with tenant_context(acme):
        user = get_user_model().objects.get(email="marketer@acme.test")
        device = TOTPDevice.objects.create(user=user, name="jwt", confirmed=True)
    connection.set_schema_to_public()
    pair = call(
        support.tenant_client("acme"),
        "POST",
        "/api/v1/auth/token/",
        {
            "username": "marketer@acme.test",
            "password": support.PASSWORD,
            "otp": support.totp_now(device),
        },
    )
    assert pair.status_code == 200, pair.content
    response = call(
        support.tenant_client("acme"),
        "POST",
        FLOWS,
        {"name": "By token"},
        HTTP_AUTHORIZATION=f"Bearer {pair.json()['access']}",
    )
    assert response.status_code == 201, response.content


def test_every_endpoint_is_in_the_openapi_schema(acme):
    schema = support.tenant_client("acme").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    for path in [
        "/api/v1/flows/",
        "/api/v1/flows/{flow_id}/",
        "/api/v1/flows/{flow_id}/draft/",
        "/api/v1/flows/{flow_id}/validate/",
        "/api/v1/flows/{flow_id}/publish/",
        "/api/v1/flows/{flow_id}/rollback/",
        "/api/v1/flows/{flow_id}/simulate/",
        "/api/v1/flows/{flow_id}/versions/",
        "/api/v1/flows/{flow_id}/versions/{number}/",
        "/api/v1/flows/{flow_id}/versions/{number}/diff/",
        "/api/v1/articles/",
        "/api/v1/articles/{article_id}/",
        "/api/v1/bot-hosts/",
    ]:
        assert path in paths, path
        for operation in paths[path].values():
            assert operation["responses"], path


def test_a_flow_that_has_run_cannot_be_deleted_only_disabled(acme):
    c = client(acme)
    flow = _create(c)
    version = _publish(c, flow["id"], GOOD)

    def run():
        inbox = Inbox.objects.create(name="Ran")
        conversation = Conversation.objects.create(
            inbox=inbox, contact=Contact.objects.create(), last_activity_at=timezone.now()
        )
        FlowRun.objects.create(
            conversation=conversation,
            version_id=version["id"],
            started_at=timezone.now(),
            updated_at=timezone.now(),
        )

    in_acme(acme, run)
    refused = call(c, "DELETE", f"{FLOWS}{flow['id']}/")
    assert refused.status_code == 409 and refused.json()["code"] == "flow_in_use"
    assert in_acme(acme, lambda: Flow.objects.filter(pk=flow["id"]).exists())
    assert "flow.deleted" not in actions(acme, "flow.")
    disabled = call(c, "PATCH", f"{FLOWS}{flow['id']}/", {"enabled": False})
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
