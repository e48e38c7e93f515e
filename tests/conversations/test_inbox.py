"""Conversation services, the agent inbox pages and API: scoped, audited, idempotent, fair."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import Http404
from django.utils import timezone
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from connectors import services as connector_services
from connectors.models import Channel
from conversations import access, presence, services
from conversations.models import Contact, ContactIdentity, Conversation, Inbox, Message
from tests import support

pytestmark = pytest.mark.django_db
User = get_user_model()


def _channel(name="chan"):

    cred = connector_services.credential_set(
        name=f"{name}-secret", kind="webhook_secret", connector="api-channel", secret="s" * 32
    )
    return Channel.objects.create(name=name, public_id=f"pub-{name}", signing_credential=cred)


@pytest.fixture
def setup(acme):
    """Inbox "Help" (channel bound) with agent as member; agent2 is in no inbox."""
    with tenant_context(acme):
        admin = User.objects.get(email="admin@acme.test")
        inbox = access.inbox_create(by=admin, name="Help")
        inbox.channel = _channel()
        inbox.save()
        agent = User.objects.get(email="agent@acme.test")
        access.inbox_member_add(by=admin, inbox=inbox, user=agent)
        message, created = services.message_receive(
            inbox=inbox,
            contact_external_id="cust-1",
            contact_name="Ada Lovelace",
            body="My order is late",
            external_id="ext-1",
        )
        assert created
    connection.set_schema_to_public()
    return {"inbox": inbox, "conversation": message.conversation, "message": message}


def test_an_incoming_message_opens_a_conversation_with_an_encrypted_body(acme, setup):
    with tenant_context(acme):
        message = Message.objects.get(pk=setup["message"].pk)
        assert b"My order is late" not in bytes(message.body_ct)
        assert services.body_of(message) == "My order is late"
        conversation = Conversation.objects.get(pk=setup["conversation"].pk)
        assert conversation.unread == 1 and conversation.status == "open"
        assert AuditEvent.objects.filter(action="conversation.created").exists()


def test_a_repeated_external_id_stores_one_message(acme, setup):
    with tenant_context(acme):
        again, created = services.message_receive(
            inbox=setup["inbox"],
            contact_external_id="cust-1",
            body="My order is late",
            external_id="ext-1",
        )
        assert not created and again.pk == setup["message"].pk
        assert Message.objects.filter(external_id="ext-1").count() == 1
        assert Conversation.objects.get(pk=setup["conversation"].pk).unread == 1


def test_a_returning_sender_reopens_their_conversation_in_one_statement(acme, setup):
    """The second message of a sender finds their conversation (not resolved) and
    reopens it: open, one more unread, snooze cleared, active now; a resolved one is
    left alone and a new one starts."""
    with tenant_context(acme):
        conversation = Conversation.objects.get(pk=setup["conversation"].pk)
        Conversation.objects.filter(pk=conversation.pk).update(
            status="snoozed", snoozed_until=timezone.now() + datetime.timedelta(days=1)
        )
        before = conversation.last_activity_at
        second, created = services.message_receive(
            inbox=setup["inbox"], contact_external_id="cust-1", body="Any news?", external_id="e2"
        )
        assert created and second.conversation_id == conversation.pk
        assert second.conversation.unread == 2 and second.conversation.status == "open"
        stored = Conversation.objects.get(pk=conversation.pk)
        assert (stored.status, stored.unread, stored.snoozed_until) == ("open", 2, None)
        assert stored.last_activity_at > before

        Conversation.objects.filter(pk=conversation.pk).update(status="resolved")
        third, _ = services.message_receive(
            inbox=setup["inbox"], contact_external_id="cust-1", body="Hello again", external_id="e3"
        )
        assert third.conversation_id != conversation.pk
        assert third.conversation.contact_id == conversation.contact_id
        assert Conversation.objects.get(pk=conversation.pk).status == "resolved"
    connection.set_schema_to_public()


def test_two_first_messages_of_one_sender_share_one_contact(acme, setup, monkeypatch):
    """The sender's identity is inserted ON CONFLICT DO NOTHING: when another first
    message of the same sender stored its identity meanwhile (simulated here between
    our contact's INSERT and our identity's), ours gives way, its contact row is
    removed again, and the message joins the winner's contact."""
    real_create = services.contact_create
    winner = {}

    def create_and_lose_the_race(**kwargs):
        contact = real_create(**kwargs)
        other = real_create(name="Other delivery")
        ContactIdentity.objects.create(
            contact=other, channel_id=setup["inbox"].channel_id, external_id="racer"
        )
        winner["contact"], winner["loser"] = other.pk, contact.pk
        return contact

    monkeypatch.setattr(services, "contact_create", create_and_lose_the_race)
    with tenant_context(acme):
        message, created = services.message_receive(
            inbox=setup["inbox"], contact_external_id="racer", body="hi", external_id="race-1"
        )
        assert created and message.conversation.contact_id == winner["contact"]
        assert not Contact.objects.filter(pk=winner["loser"]).exists()
        assert ContactIdentity.objects.filter(external_id="racer").count() == 1
    connection.set_schema_to_public()


def test_bad_inbound_input_is_refused(acme, setup):
    with tenant_context(acme):
        for kwargs in (
            {"contact_external_id": "", "body": "x"},
            {"contact_external_id": "c", "body": ""},
            {"contact_external_id": "c", "body": "x" * 5000},
            {
                "contact_external_id": "c",
                "body": "x",
                "attachments": [{"url": "http://plain/", "type": "image/png", "size": 1}],
            },
            {
                "contact_external_id": "c",
                "body": "x",
                "attachments": [{"url": "https://a/", "size": -1}],
            },
        ):
            with pytest.raises(ValidationError):
                services.message_receive(inbox=setup["inbox"], **kwargs)


SERVICES = [
    ("reply_send", {"body": "On its way"}),
    ("note_add", {"body": "VIP customer"}),
    ("resolve", {}),
    ("reopen", {}),
    ("snooze", {"until": "later"}),
    ("labels_set", {"labels": ["billing"]}),
    ("priority_set", {"priority": 3}),
    ("takeover", {}),
    ("handback", {}),
    ("assign", {"assignee": "agent"}),
    ("assign", {"assignee": None}),
]


def _kwargs(kwargs):
    out = dict(kwargs)
    if out.get("until") == "later":
        out["until"] = timezone.now() + timezone.timedelta(hours=1)
    if out.get("assignee") == "agent":
        out["assignee"] = User.objects.get(email="agent@acme.test")
    return out


@pytest.mark.parametrize(("name", "kwargs"), SERVICES)
def test_every_service_works_for_a_member_and_is_audited(acme, setup, name, kwargs):
    with tenant_context(acme):
        agent = User.objects.get(email="agent@acme.test")
        before = AuditEvent.objects.count()
        getattr(services, name)(
            by=agent, conversation_id=setup["conversation"].pk, **_kwargs(kwargs)
        )
        assert AuditEvent.objects.count() == before + 1


@pytest.mark.parametrize(("name", "kwargs"), SERVICES)
@pytest.mark.parametrize("who", ["marketer@acme.test", "analyst@acme.test", "integrator@acme.test"])
def test_every_service_refuses_the_wrong_role(acme, setup, name, kwargs, who):
    with tenant_context(acme):
        user = User.objects.get(email=who)
        with pytest.raises(PermissionDenied):
            getattr(services, name)(
                by=user, conversation_id=setup["conversation"].pk, **_kwargs(kwargs)
            )


@pytest.mark.parametrize(("name", "kwargs"), SERVICES)
def test_every_service_hides_a_conversation_of_another_inbox(acme, setup, name, kwargs):
    with tenant_context(acme):
        outsider = User.objects.get(email="agent2@acme.test")
        with pytest.raises(Http404):
            getattr(services, name)(
                by=outsider, conversation_id=setup["conversation"].pk, **_kwargs(kwargs)
            )


@pytest.mark.parametrize(("name", "kwargs"), SERVICES)
def test_every_service_hides_the_other_tenants_conversation(acme, globex, setup, name, kwargs):
    with tenant_context(globex):
        owner = User.objects.get(email="owner@globex.test")  # every permission, in globex
        kw = dict(kwargs)
        if kw.get("assignee") == "agent":
            kw["assignee"] = owner
        if kw.get("until") == "later":
            kw["until"] = timezone.now() + timezone.timedelta(hours=1)
        with pytest.raises(Http404):
            getattr(services, name)(by=owner, conversation_id=setup["conversation"].pk, **kw)


def test_assigning_outside_the_inbox_is_refused(acme, setup):
    with tenant_context(acme):
        agent = User.objects.get(email="agent@acme.test")
        with pytest.raises(ValidationError):
            services.assign(
                by=agent,
                conversation_id=setup["conversation"].pk,
                assignee=User.objects.get(email="agent2@acme.test"),
            )


def test_round_robin_is_fair_across_three_online_agents(acme):
    with tenant_context(acme):
        admin = User.objects.get(email="admin@acme.test")
        inbox = access.inbox_create(by=admin, name="RR")
        inbox.channel = _channel("rr")
        inbox.assignment = Inbox.Assignment.ROUND_ROBIN
        inbox.save()
        agents = []
        for i in range(3):
            user = User.objects.create_user(
                username=f"rr{i}@acme.test", email=f"rr{i}@acme.test", role="agent"
            )
            access.inbox_member_add(by=admin, inbox=inbox, user=user)
            presence.touch(user)
            agents.append(user)
        offline = User.objects.create_user(
            username="rr-off@acme.test", email="rr-off@acme.test", role="agent"
        )
        access.inbox_member_add(by=admin, inbox=inbox, user=offline)
        counts = {u.pk: 0 for u in agents}
        for n in range(30):
            message, _ = services.message_receive(
                inbox=inbox,
                contact_external_id=f"rr-contact-{n}",
                body="hello",
                external_id=f"rr-{n}",
            )
            assignee = Conversation.objects.get(pk=message.conversation_id).assignee_id
            assert assignee in counts, "assigned to someone offline or outside the inbox"
            counts[assignee] += 1
        assert sorted(counts.values()) == [10, 10, 10]


def test_an_auto_reply_goes_out_outside_business_hours(acme):
    with tenant_context(acme):
        admin = User.objects.get(email="admin@acme.test")
        inbox = access.inbox_create(by=admin, name="Night")
        inbox.channel = _channel("night")
        inbox.business_hours = {"mon": [["00:00", "00:01"]]}  # practically always closed
        inbox.auto_reply = "We are closed; we answer at 9."
        inbox.save()
        message, _ = services.message_receive(
            inbox=inbox, contact_external_id="n1", body="hi", external_id="n-1"
        )
        out = Message.objects.filter(conversation_id=message.conversation_id, direction="out").get()
        assert (
            services.body_of(out) == "We are closed; we answer at 9." and out.delivery == "queued"
        )


def test_contact_search_is_capped_and_audited(acme):
    with tenant_context(acme):
        services.contact_create(name="Grace", email="grace@example.com")
        agent = User.objects.get(email="agent@acme.test")
        found = services.contact_search(by=agent, query="Grace@Example.com")
        assert len(found) == 1
        event = AuditEvent.objects.filter(action="contact.searched").latest("id")
        assert event.details == {"by": "email", "results": 1} and "grace" not in str(event.details)
        with pytest.raises(PermissionDenied):
            services.contact_search(by=User.objects.get(email="marketer@acme.test"), query="x@y.z")


# --- pages and API ---------------------------------------------------------------------------


def test_the_inbox_page_shows_only_the_agents_conversations(acme, setup):
    agent = support.signed_in(acme, "agent@acme.test")
    page = agent.get("/inbox/")
    assert page.status_code == 200 and "Ada Lovelace" in page.content.decode()
    outsider = support.signed_in(acme, "agent2@acme.test")
    assert "Ada Lovelace" not in outsider.get("/inbox/").content.decode()
    assert outsider.get(f"/inbox/c/{setup['conversation'].pk}/").status_code == 404
    assert (
        outsider.get(f"/api/v1/conversations/{setup['conversation'].pk}/messages/").status_code
        == 404
    )
    assert support.signed_in(acme, "marketer@acme.test").get("/inbox/").status_code == 403


def test_the_thread_replies_and_polls_without_a_reload(acme, setup):
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    thread = agent.get(f"/inbox/c/{cid}/", HTTP_HX_REQUEST="true")
    assert "My order is late" in thread.content.decode()
    last = setup["message"].pk
    assert agent.get(f"/inbox/c/{cid}/new/?after={last}").status_code == 204
    sent = agent.post(
        f"/inbox/c/{cid}/reply/", {"body": "Sorry! Checking now."}, HTTP_HX_REQUEST="true"
    )
    assert sent.status_code == 200 and "Checking now" in sent.content.decode()
    with tenant_context(acme):
        services.message_receive(
            inbox=setup["inbox"], contact_external_id="cust-1", body="Thanks", external_id="ext-2"
        )
    fresh = agent.get(f"/inbox/c/{cid}/new/?after={last}")
    assert fresh.status_code == 200 and "Thanks" in fresh.content.decode()
    # The poll follows a queued reply's delivery status.
    with tenant_context(acme):
        out = Message.objects.filter(conversation_id=cid, direction="out").latest("id")
        assert out.delivery == "queued"
        services.message_delivery_update(message=out, status="sent")
    newest = fresh.content.decode().count("msg-row")
    assert newest >= 1
    followed = agent.get(f"/inbox/c/{cid}/new/?after={out.pk + 1000}&pending={out.pk}.queued")
    html = followed.content.decode()
    assert f'id="m-{out.pk}" hx-swap-oob="true"' in html and 'data-status="sent"' in html
    assert agent.get(f"/inbox/c/{cid}/new/?after={out.pk + 1000}").status_code == 204
    empty = agent.post(f"/inbox/c/{cid}/reply/", {"body": "   "}, HTTP_HX_REQUEST="true")
    assert empty.status_code == 400 and empty["HX-Retarget"] == "#thread-errors"
    resolved = agent.post(f"/inbox/c/{cid}/act/", {"action": "resolve"}, HTTP_HX_REQUEST="true")
    assert resolved.status_code == 200 and "Reopen" in resolved.content.decode()


def test_message_bodies_appear_only_inside_their_thread(acme, setup):
    """Opening ``/inbox/?c=<id>`` (or reloading it) once put every message in the page banners."""
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    for url in (f"/inbox/?c={cid}", f"/inbox/?c={cid}&status=any"):
        html = agent.get(url).content.decode()
        # Once in the thread, once as the list row's preview; nowhere else.
        assert html.count("My order is late") == 2
        thread = html[html.index('<div class="messages" id="messages">') :]
        assert "My order is late" in thread
        listed = html[html.index('id="conversation-items"') : html.index('id="thread"')]
        assert '<span class="preview">My order is late</span>' in listed
        assert "<Message:" not in html and "&lt;Message:" not in html


def test_the_poll_follows_delivery_past_sent(acme, setup):
    """Delivered and read arrive after "Sent": the poll keeps following a message until it is final."""
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    sent = agent.post(f"/inbox/c/{cid}/reply/", {"body": "On its way."}, HTTP_HX_REQUEST="true")
    assert sent.status_code == 200
    with tenant_context(acme):
        out = Message.objects.filter(conversation_id=cid, direction="out").latest("id")
        services.message_delivery_update(message=out, status="sent")
    after = out.pk
    # The page shows "sent": nothing new to say until the status moves on.
    assert agent.get(f"/inbox/c/{cid}/new/?after={after}&pending={out.pk}.sent").status_code == 204
    with tenant_context(acme):
        services.message_delivery_update(message=out, status="delivered")
    html = agent.get(f"/inbox/c/{cid}/new/?after={after}&pending={out.pk}.sent").content.decode()
    assert f'id="m-{out.pk}" hx-swap-oob="true"' in html and 'data-status="delivered"' in html
    # ... and the next poll keeps following it (delivered → read) ...
    assert f"pending={out.pk}.delivered" in html
    with tenant_context(acme):
        services.message_delivery_update(message=out, status="read")
    html = agent.get(
        f"/inbox/c/{cid}/new/?after={after}&pending={out.pk}.delivered"
    ).content.decode()
    assert 'data-status="read"' in html
    # ... until it is final: "read" is not followed any further.
    assert f"{out.pk}.read" not in html and "pending=" not in html
    # Hostile cursors are ignored, never a 500.
    for junk in ("x.sent", f"{out.pk}.bogus", "²", "9" * 40 + ".sent", f"{out.pk}"):
        assert agent.get(f"/inbox/c/{cid}/new/?after={after}&pending={junk}").status_code == 204


def test_the_contact_panel_masks_pii_for_agents(acme):
    with tenant_context(acme):
        admin = User.objects.get(email="admin@acme.test")
        inbox = access.inbox_create(by=admin, name="PII")
        inbox.channel = _channel("pii")
        inbox.save()
        access.inbox_member_add(
            by=admin, inbox=inbox, user=User.objects.get(email="agent@acme.test")
        )
        message, _ = services.message_receive(
            inbox=inbox, contact_external_id="p1", body="hi", external_id="p-1"
        )

        contact = Contact.objects.get(pk=message.conversation.contact_id)
        contact.phone_ct = services._encrypt(contact, "phone", "+4915112345678")
        contact.save()
    cid = message.conversation_id
    agent_page = support.signed_in(acme, "agent@acme.test").get(f"/inbox/c/{cid}/").content.decode()
    assert "+4915112345678" not in agent_page and "5678" in agent_page
    admin_page = support.signed_in(acme, "admin@acme.test").get(f"/inbox/c/{cid}/").content.decode()
    assert "+4915112345678" in admin_page


@pytest.fixture
def many(acme, setup):
    with tenant_context(acme):
        for n in range(30):
            services.message_receive(
                inbox=setup["inbox"],
                contact_external_id=f"many-{n}",
                contact_name=f"Person {n}",
                body=f"message {n}",
                external_id=f"many-{n}",
            )
            for k in range(3):
                services.message_receive(
                    inbox=setup["inbox"],
                    contact_external_id="cust-1",
                    body=f"more {n}-{k}",
                    external_id=f"more-{n}-{k}",
                )
    connection.set_schema_to_public()


def test_query_counts_are_pinned(
    acme, setup, many, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    agent = support.signed_in(acme, "agent@acme.test")
    cid = setup["conversation"].pk
    # Keys are cached once the transaction that read them commits (as every
    # request's does in production); run those commit hooks once here.
    with django_capture_on_commit_callbacks(execute=True):
        agent.get(f"/inbox/?c={cid}")
    with django_assert_max_num_queries(16):
        assert agent.get("/inbox/?part=list", HTTP_HX_REQUEST="true").status_code == 200
    with django_assert_max_num_queries(16):
        assert agent.get("/api/v1/conversations/?page_size=100").status_code == 200
    with django_assert_max_num_queries(18):
        assert agent.get(f"/inbox/c/{cid}/").status_code == 200
    with django_assert_max_num_queries(14):
        assert agent.get(f"/api/v1/conversations/{cid}/messages/?limit=200").status_code == 200


def test_the_api_lists_filters_and_pages(acme, setup, many):
    agent = support.signed_in(acme, "agent@acme.test")
    first = agent.get("/api/v1/conversations/?page_size=10").json()
    assert len(first["results"]) == 10 and first["next_cursor"]
    second = agent.get(f"/api/v1/conversations/?page_size=10&cursor={first['next_cursor']}").json()
    assert not {c["id"] for c in first["results"]} & {c["id"] for c in second["results"]}
    assert agent.get("/api/v1/conversations/?page_size=1000").status_code == 400
    assert agent.get("/api/v1/conversations/?cursor=garbage").status_code in (200, 400)
    mine = agent.get("/api/v1/conversations/?scope=mine").json()["results"]
    assert mine == []
    cid = setup["conversation"].pk
    with tenant_context(acme):
        me = User.objects.get(email="agent@acme.test")
    assert (
        agent.post(
            f"/api/v1/conversations/{cid}/assign/",
            {"assignee": me.pk},
            content_type="application/json",
        ).status_code
        == 200
    )
    assert [c["id"] for c in agent.get("/api/v1/conversations/?scope=mine").json()["results"]] == [
        cid
    ]
    posted = agent.post(
        f"/api/v1/conversations/{cid}/messages/",
        {"body": "api reply"},
        content_type="application/json",
    )
    assert posted.status_code == 201 and posted.json()["delivery"] == "queued"
    assert agent.post(f"/api/v1/conversations/{cid}/resolve/").json()["status"] == "resolved"


def test_canned_responses_are_managed_and_expand_in_replies(acme, setup):
    admin = support.signed_in(acme, "admin@acme.test")
    assert (
        admin.post(
            "/inboxes/canned/",
            {"shortcut": "thanks", "title": "Thanks", "body": "Thank you for waiting!"},
        ).status_code
        == 302
    )
    assert "/thanks" in admin.get("/inboxes/").content.decode()
    bad = admin.post(
        "/inboxes/canned/", {"shortcut": "Not A Slug!", "title": "x", "body": "y"}, follow=True
    )
    assert "not saved" in bad.content.decode()
    agent = support.signed_in(acme, "agent@acme.test")
    assert (
        agent.post("/inboxes/canned/", {"shortcut": "x", "title": "x", "body": "x"}).status_code
        == 403
    )
    cid = setup["conversation"].pk
    sent = agent.post(f"/inbox/c/{cid}/reply/", {"body": "/thanks"}, HTTP_HX_REQUEST="true")
    assert "Thank you for waiting!" in sent.content.decode()
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="canned.created").exists()


def test_older_pages_pause_the_list_refresh(acme, setup, many):
    agent = support.signed_in(acme, "agent@acme.test")
    first = agent.get("/inbox/?part=list", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="conv-poll" hx-swap-oob="true"' in first and 'hx-trigger="every 3s"' in first
    cursor = first.split("cursor=", 1)[1].split("&", 1)[0]
    older = agent.get(f"/inbox/?part=list&cursor={cursor}", HTTP_HX_REQUEST="true").content.decode()
    assert "Refresh paused" in older and 'hx-trigger="every 3s"' not in older
    assert "Person" in older  # the older page itself
