"""The role matrix, generated: every URL pattern of the tenant URL conf × every
role and an anonymous visitor, checked against the policy table.

The routes come from the URL conf itself, so a new endpoint cannot be left
out: ``HOW_TO_CALL`` must say how to call every route (the test fails on a
route it does not know), and what each role may do is read from the view
(``required_permission`` / ``required_permissions``, set by the decorators and
API classes from the policy table), never from this file.

* allowed: 2xx or 3xx (a redirect as designed, never to the login page);
* denied: 403 (audited as ``access.denied``) or 404 (an object the user may
  not see answers like one that does not exist);
* anonymous: a redirect to the login page (pages) or 401 (API).
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from accounts.models import AccessGrant
from accounts.permissions import required_permission_for
from accounts.policy import Role, role_has
from audit.models import AuditEvent, AuditSink
from bots import services as bot_services
from connectors import services as connector_services
from connectors.ai.services import ai_provider_create
from connectors.channels import channel_create
from connectors.webchat.services import webchat_channel_create
from conversations import access
from conversations.models import OUTSIDE_WINDOW_ERROR, Contact, Conversation, Message
from conversations.services import reply_send
from tenants.models import BreakGlassGrant, Tenant
from tests import support

# route name → (method, what kind of access, data). Kinds:
#   "policy": the view's policy permission decides;
#   "user":   any signed-in user of the tenant;
#   "public": no sign-in needed (sign-in pages, token endpoints, API schema):
#             checked for never answering 5xx and never leaking to the wrong role.
HOW_TO_CALL: dict[str, tuple[str, str, dict]] = {
    "home": ("GET", "user", {}),
    "login": ("GET", "public", {}),
    "logout": ("POST", "public", {}),
    "schema": ("GET", "public", {}),
    "api-docs": ("GET", "public", {}),
    "accounts:users": ("GET", "policy", {}),
    "accounts:user_invite": ("POST", "policy", {"email": "@new", "role": "agent"}),
    "accounts:user_role": ("POST", "policy", {"role": "agent"}),
    "accounts:user_invite_resend": ("POST", "policy", {}),
    "accounts:user_invite_cancel": ("POST", "policy", {}),
    "accounts:user_active": ("POST", "policy", {"active": "1"}),
    "accounts:user_mfa_reset": ("POST", "policy", {}),
    "accounts:user_unlock": ("POST", "policy", {}),
    "accounts:mfa_policy": ("GET", "policy", {}),
    "accounts:access": ("GET", "user", {}),
    "accounts:access_decide": ("POST", "policy", {"decision": "deny"}),
    "accounts:access_revoke": ("POST", "policy", {}),
    "accounts:sign_out_everywhere": ("POST", "user", {}),
    "accounts:activate": ("GET", "public", {}),
    "accounts:activated": ("GET", "public", {}),
    "break_glass:enter": ("GET", "public", {}),
    "break_glass:owner_list": ("GET", "policy", {}),
    "break_glass:approve": ("POST", "policy", {}),
    "break_glass:deny": ("POST", "policy", {}),
    "break_glass:end": ("POST", "policy", {}),
    "mfa:manage": ("GET", "user", {}),
    "mfa:enrol": ("GET", "user", {}),
    "mfa:verify": ("GET", "user", {}),
    "mfa:step_up": ("GET", "user", {}),
    "mfa:backup_codes": ("POST", "user", {}),
    "mfa:reset": ("POST", "user", {}),
    "audit:events": ("GET", "policy", {}),
    "audit:export": ("POST", "policy", {"format": "jsonl"}),
    "audit:sinks": ("GET", "policy", {}),
    "audit:sink_delete": ("POST", "policy", {}),
    "audit:sink_send": ("POST", "policy", {}),
    "connectors:credentials": ("GET", "policy", {}),
    "connectors:credential_replace": ("POST", "policy", {"secret": "matrix-secret-value-1"}),
    "connectors:credential_test": ("POST", "policy", {}),
    "connectors:credential_delete": ("POST", "policy", {}),
    "connectors:channels": ("GET", "policy", {}),
    "connectors:ai_providers": ("GET", "policy", {}),
    "connectors:ai_provider_edit": ("GET", "policy", {}),
    "connectors:ai_provider_test": ("POST", "policy", {}),
    "connectors:ai_provider_delete": ("POST", "policy", {}),
    "connectors:channel_rotate": ("POST", "policy", {}),
    "connectors:channel_enabled": ("POST", "policy", {"enabled": "1"}),
    "connectors:channel_test": ("POST", "policy", {}),
    "connectors:message_template": ("POST", "policy", {}),
    "webhooks:channel": ("POST", "public", {}),
    "webchat:frame": ("GET", "public", {}),
    "webchat:session": ("POST", "public", {}),
    "webchat:messages": ("GET", "public", {}),
    "webchat:read": ("POST", "public", {}),
    "webchat:demo": ("GET", "public", {}),
    "webchat:origins": ("POST", "policy", {"allowed_origins": "https://shop.example"}),
    "webchat:create": (
        "POST",
        "policy",
        {
            "webchat-name": "@newslug",
            "webchat-allowed_origins": "https://shop.example",
            "webchat-inbox": "@inbox",
        },
    ),
    "connectors:meta_channel_create": (
        "POST",
        "policy",
        {
            "meta-name": "@newslug",
            "meta-kind": "whatsapp",
            "meta-meta_app": "own",
            "meta-routing_id": "106540352242922",
            "meta-app_secret": "matrix-app-secret",
            "meta-verify_token": "matrix-verify-token",
            "meta-access_token": "matrix-access-token",
            "meta-inbox": "@inbox",
        },
    ),
    "api:channels": ("GET", "policy", {}),
    "api:channel-rotate": ("POST", "policy", {}),
    "api:channel-inboxes": ("GET", "policy", {}),
    "api:channel-origins": ("PUT", "policy", {"allowed_origins": ["https://shop.example"]}),
    "conversations:inbox_app": ("GET", "policy", {}),
    "conversations:thread": ("GET", "policy", {}),
    "conversations:thread_new": ("GET", "policy", {}),
    "conversations:reply": ("POST", "policy", {"body": "matrix reply"}),
    "conversations:act": ("POST", "policy", {"action": "resolve"}),
    "conversations:inboxes": ("GET", "policy", {}),
    "conversations:canned_create": (
        "POST",
        "policy",
        {"shortcut": "@newslug", "title": "Thanks", "body": "Thank you!"},
    ),
    "conversations:inbox": ("GET", "policy", {}),
    "conversations:inbox_members": ("POST", "policy", {"user": "@agent2", "action": "add"}),
    "conversations:inbox_settings": (
        "POST",
        "policy",
        {"assignment": "manual", "timezone": "UTC", "channel": "", "auto_reply": ""},
    ),
    "keyring:security": ("GET", "policy", {}),
    "keyring:rotate": ("POST", "policy", {}),
    "keyring:rotate_token_key": ("POST", "policy", {}),
    "api:token": ("POST", "public", {}),
    "api:token-refresh": ("POST", "public", {}),
    "api:token-revoke": ("POST", "public", {}),
    "api:me": ("GET", "user", {}),
    "api:users": ("GET", "policy", {}),
    "api:user": ("GET", "policy", {}),
    "api:audit-events": ("GET", "policy", {}),
    "api:audit-export": ("POST", "policy", {"format": "jsonl"}),
    "api:inboxes": ("GET", "policy", {}),
    "api:inbox": ("GET", "policy", {}),
    "api:conversations": ("GET", "policy", {}),
    "api:conversation": ("GET", "policy", {}),
    "api:conversation-messages": ("GET", "policy", {}),
    "api:conversation-assign": ("POST", "policy", {"assignee": "@agent"}),
    "api:conversation-resolve": ("POST", "policy", {}),
    "api:contact-search": ("GET", "policy", {"q": "nobody@example.com"}),
    "api:credentials": ("GET", "policy", {}),
    "api:credential": ("GET", "policy", {}),
    "api:credential-test": ("POST", "policy", {}),
    "api:ai-providers": ("GET", "policy", {}),
    "api:ai-provider": ("GET", "policy", {}),
    "api:ai-provider-test": ("POST", "policy", {}),
    "api:flows": ("GET", "policy", {}),
    "api:flow": ("GET", "policy", {}),
    "api:flow-draft": ("GET", "policy", {}),
    "api:flow-validate": ("POST", "policy", {}),
    "api:flow-publish": ("POST", "policy", {}),
    "api:flow-rollback": ("POST", "policy", {"number": "1"}),
    "api:flow-simulate": ("POST", "policy", {"messages": "hello"}),
    "api:flow-versions": ("GET", "policy", {}),
    "api:flow-version": ("GET", "policy", {}),
    "api:flow-version-diff": ("GET", "policy", {}),
    "api:articles": ("GET", "policy", {"q": "refund"}),
    "api:article": ("GET", "policy", {}),
    "api:bot-hosts": ("GET", "policy", {}),
    "bots:flows": ("GET", "policy", {}),
    "bots:flow_editor": ("GET", "policy", {}),
    "kb:articles": ("GET", "policy", {"q": "refund"}),
    "kb:article_new": ("GET", "policy", {}),
    "kb:article_edit": ("GET", "policy", {}),
    "kb:article_delete": ("GET", "policy", {}),
    "kb:hosts": ("GET", "policy", {}),
    "kb:host_remove": ("POST", "policy", {}),
}


def _routes(resolver=None, prefix: str = "") -> list[tuple[str, object]]:
    resolver = resolver or get_resolver("parley.urls")
    found = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace
            found += [(f"{ns}:{name}" if ns else name, cb) for name, cb in _routes(entry, prefix)]
        elif isinstance(entry, URLPattern):
            found.append((entry.name, entry.callback))
    return found


ROUTES = _routes()
ENDS_SESSION = {"accounts:sign_out_everywhere"}  # goes to the login page by design
WHO = [*Role.values, "anonymous"]


def test_every_route_is_in_the_matrix():
    names = [name for name, _ in ROUTES]
    assert None not in names, "every URL pattern needs a name"
    assert sorted(set(names) - set(HOW_TO_CALL)) == [], "add the new routes to HOW_TO_CALL"
    assert sorted(set(HOW_TO_CALL) - set(names)) == [], "HOW_TO_CALL names routes that are gone"


def _view_class(callback):
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None) or callback


def _objects(acme) -> dict:
    """What the routes with ids act on (created in the test's transaction)."""
    User = get_user_model()
    with tenant_context(acme):
        admin = User.objects.get(email="admin@acme.test")
        agent2 = User.objects.get(email="agent2@acme.test")
        agent = User.objects.get(email="agent@acme.test")
        inbox = access.inbox_create(by=admin, name=f"Matrix {uuid.uuid4().hex[:6]}")
        access.inbox_member_add(
            by=admin, inbox=inbox, user=User.objects.get(email="agent@acme.test")
        )
        invited = User(username=f"matrix-{uuid.uuid4().hex[:8]}@acme.test", role="agent")
        invited.email = invited.username
        invited.set_unusable_password()
        invited.save()
        grant = AccessGrant.objects.create(
            user=agent2, kind="role", role="analyst", hours=1, reason="matrix test request"
        )
        credential = connector_services.credential_set(
            name=f"matrix-{uuid.uuid4().hex[:6]}",
            kind="api_key",
            connector="hubspot",
            secret="matrix-secret-000",
        )
        sink = AuditSink.objects.create(name="matrix", kind="syslog", host="127.0.0.1", port=9)

        channel, _ = channel_create(
            by=admin, name=f"Matrix {uuid.uuid4().hex[:6]}", outbound_url="https://x.example/"
        )
        web_inbox = access.inbox_create(by=admin, name=f"Matrix web {uuid.uuid4().hex[:6]}")
        web_chat = webchat_channel_create(
            by=admin,
            name=f"Matrix web {uuid.uuid4().hex[:6]}",
            allowed_origins=["https://shop.example"],
            inbox_id=web_inbox.pk,
        )
        # Port 9 (discard) on loopback: its "test" is refused at once, nothing leaves.
        provider = ai_provider_create(
            by=admin,
            name=f"Matrix {uuid.uuid4().hex[:6]}",
            base_url="http://127.0.0.1:9/v1",
            model="matrix-model",
            api_key="sk-matrix-key-0001",
        )

        conversation = Conversation.objects.create(
            inbox=inbox, contact=Contact.objects.create(), last_activity_at=timezone.now()
        )
        # A WhatsApp reply refused outside the 24-hour window, on a channel that has a
        # re-engagement template: what the "send the template instead" route acts on.
        # Its own inbox: the matrix inbox stays free for the channel-create routes.
        wa_inbox = access.inbox_create(by=admin, name=f"Matrix WA {uuid.uuid4().hex[:6]}")
        access.inbox_member_add(by=admin, inbox=wa_inbox, user=agent)
        channel_create(
            by=admin,
            name=f"Matrix WA {uuid.uuid4().hex[:6]}",
            kind="whatsapp",
            settings={
                "phone_number_id": "106540352242922",
                "reengagement_template": "hello_world",
                "reengagement_language": "en_US",
            },
            secrets_given={
                "app_secret": "matrix-app-secret",
                "access_token": "matrix-access-token",
                "verify_token": "matrix-verify-token",
            },
            inbox_id=wa_inbox.pk,
        )
        wa_conversation = Conversation.objects.create(
            inbox=wa_inbox, contact=Contact.objects.create(), last_activity_at=timezone.now()
        )
        refused = reply_send(by=admin, conversation_id=wa_conversation.pk, body="matrix reply")
        Message.objects.filter(pk=refused.pk).update(
            delivery=Message.Delivery.FAILED, delivery_error=OUTSIDE_WINDOW_ERROR
        )
        # A flow with v1 published and a draft v2, an article, an allowed host.
        flow = bot_services.flow_create(by=admin, name=f"Matrix {uuid.uuid4().hex[:6]}")
        bot_services.flow_publish(by=admin, flow=flow)
        bot_services.draft_get_or_create(by=admin, flow=flow)
        article = bot_services.article_create(
            by=admin, title="Refunds", body="Refunds take five working days."
        )
        host = bot_services.allowed_host_add(by=admin, host="api.matrix.example")
    with schema_context("public"):
        operator = User.objects.get(username="operator")
        bg = BreakGlassGrant.objects.create(
            operator=operator,
            tenant=acme,
            reason="matrix test break-glass",
            minutes=30,
            requested_at=timezone.now(),
        )
    connection.set_schema_to_public()
    return {
        "user_id": agent2.pk,
        "invited_id": invited.pk,
        "inbox_id": inbox.pk,
        "grant_id": {"accounts": grant.pk, "break_glass": bg.pk},
        "credential_id": credential.pk,
        "sink_id": sink.pk,
        # A web chat's allowed sites (the API's) need a web chat; every other route the API channel.
        "channel_id": {"api:channel-origins": web_chat.pk, "*": channel.pk},
        "provider_id": provider.pk,
        "public_id": channel.public_id,
        "kind": channel.kind,
        "uidb64": "MQ",
        "token": "set-password",
        "@agent2": str(agent2.pk),
        "@agent": str(agent.pk),
        "@inbox": str(inbox.pk),
        "conversation_id": conversation.pk,
        "message_id": refused.pk,
        "flow_id": flow.pk,
        "number": 1,
        "article_id": article.pk,
        "host_id": host.pk,
    }


def _url(name: str, objects: dict) -> str:
    kwargs = {}
    for key in _kwarg_names(name):
        value = objects[key]
        if isinstance(value, dict):  # by route, by app, or for every other route
            value = value.get(name, value.get(name.split(":")[0], value.get("*")))
        kwargs[key] = value
    return reverse(name, urlconf="parley.urls", kwargs=kwargs or None)


def _kwarg_names(name: str) -> list[str]:
    resolver = get_resolver("parley.urls")
    ns_path = name.split(":")
    for ns in ns_path[:-1]:
        resolver = resolver.namespace_dict[ns][1]
    candidates = resolver.reverse_dict.getlist(ns_path[-1])
    return list(candidates[0][0][0][1]) if candidates else []


def _data(data: dict, objects: dict) -> dict:
    out = {}
    for key, value in data.items():
        if value == "@new":
            value = f"matrix-{uuid.uuid4().hex[:8]}@acme.test"
        elif value == "@newslug":
            value = f"m-{uuid.uuid4().hex[:8]}"
        elif isinstance(value, str) and value.startswith("@"):
            value = objects[value]
        out[key] = value
    return out


@pytest.fixture(scope="module")
def objects(django_db_setup, django_db_blocker):
    """``_objects``, made once for the module inside a transaction that is rolled back
    after its last test. Each test runs in a savepoint of it (pytest-django's own
    transaction, nested), so whatever a request changes (a credential deleted, a user
    deactivated, an event audited) is undone before the next test, which sees the
    objects exactly as made."""
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield _objects(Tenant.objects.get(slug="acme"))
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            connection.set_schema_to_public()


@pytest.mark.django_db
@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("name", sorted(HOW_TO_CALL))
def test_the_policy_table_decides(objects, acme, name, who):
    assert connection.in_atomic_block and len(connection.savepoint_ids) >= 1, (
        "the test must run in a savepoint of the module's transaction"
    )
    method, kind, data = HOW_TO_CALL[name]
    callback = dict(ROUTES)[name]
    url = _url(name, objects)
    client = (
        support.tenant_client("acme")
        if who == "anonymous"
        else support.signed_in(acme, f"{who}@acme.test")
    )
    if method == "PUT":
        response = client.put(url, _data(data, objects), content_type="application/json")
    else:
        send = client.get if method == "GET" else client.post
        response = send(url, _data(data, objects))
    status = response.status_code
    assert status < 500, f"{method} {url} as {who}: {status}"
    location = response.get("Location", "")
    is_api = url.startswith("/api/")

    if kind == "public":
        return
    if who == "anonymous":
        if is_api:
            assert status == 401, f"{method} {url} anonymous: {status}"
        else:
            assert status == 302 and location.startswith("/login/"), f"{url}: {status} {location}"
        return
    perm = None if kind == "user" else required_permission_for(_view_class(callback), method)
    if kind == "policy":
        assert perm is not None, f"{name} names no policy permission"
    allowed = perm is None or role_has(who, perm)
    if allowed:
        assert 200 <= status < 400, f"{method} {url} as {who} (allowed by {perm}): {status}"
        assert not location.startswith("/mfa/step-up/")
        if name not in ENDS_SESSION:
            assert not location.startswith("/login/"), f"{url} as {who} was sent to sign in"
    else:
        assert status in (403, 404), f"{method} {url} as {who} (lacks {perm}): {status}"
        if status == 403:
            with tenant_context(acme):
                assert AuditEvent.objects.filter(
                    action="access.denied", details__path=url
                ).exists(), f"the refusal of {url} for {who} was not audited"
