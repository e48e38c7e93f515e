"""Break-glass: an operator's read-only, time-limited, audited access to one tenant."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail, signing
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from tenants import breakglass
from tenants.models import BreakGlassGrant
from tenants.tasks import break_glass_expire_due
from tests import support

REASON = "Customer ticket 4711: messages vanish from the inbox"


def _operator():
    with schema_context("public"):
        return get_user_model().objects.get(username="operator")


def _request(console, slug="acme", *, minutes=30, emergency=False, reason=REASON):
    data = {"reason": reason, "minutes": minutes}
    if emergency:
        data["emergency"] = "on"
    return console.post(f"/tenants/{slug}/break-glass/", data)


def _latest_grant() -> BreakGlassGrant:
    connection.set_schema_to_public()
    return BreakGlassGrant.objects.order_by("-id").first()


def _handoff_token(console, grant, slug="acme") -> str:
    response = console.post(f"/tenants/{slug}/break-glass/{grant.pk}/open/")
    # A page that navigates on, not a redirect: CSP form-action covers redirects after a POST.
    assert response.status_code == 200, response.content[:500]
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"
    # The console's CSP is not loosened for it.
    assert response["Content-Security-Policy"] == settings.PARLEY_CSP
    html = response.content.decode()
    link = re.search(r'id="break-glass-handoff" class="[^"]*" href="([^"]+)"', html)
    assert link, html[:2000]
    target = link.group(1).replace("&amp;", "&")
    assert f'<meta http-equiv="refresh" content="0;url={link.group(1)}">' in html
    url = urlsplit(target)
    assert url.hostname == f"{slug}.localhost" and url.path == "/break-glass/enter/"
    return parse_qs(url.query)["token"][0]


def _enter(console, grant, slug="acme"):
    client = support.tenant_client(slug)
    response = client.get("/break-glass/enter/", {"token": _handoff_token(console, grant, slug)})
    assert response.status_code == 302 and response["Location"] == "/"
    return client


def _approved_grant(console, acme) -> BreakGlassGrant:
    assert _request(console).status_code == 302
    grant = _latest_grant()
    owner = support.signed_in(acme, "owner@acme.test")
    assert owner.post(f"/settings/break-glass/{grant.pk}/approve/").status_code == 302
    grant.refresh_from_db()
    return grant


def _actions(schema: str, grant: BreakGlassGrant) -> list[str]:
    with schema_context(schema):
        return list(
            AuditEvent.objects.filter(target_type="break_glass_grant", target_id=str(grant.pk))
            .order_by("id")
            .values_list("action", flat=True)
        )


def _expire_now(grant: BreakGlassGrant) -> None:
    connection.set_schema_to_public()
    BreakGlassGrant.objects.filter(pk=grant.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


@pytest.mark.django_db
def test_it_grants_read_only_access_that_ends_at_its_deadline_and_appears_in_both_trails(acme):
    console = support.signed_in(None, "operator")
    response = _request(console)
    assert response.status_code == 302 and response["Location"] == "/tenants/acme/"
    grant = _latest_grant()
    assert grant.status == BreakGlassGrant.Status.PENDING and grant.expires_at is None

    owner = support.signed_in(acme, "owner@acme.test")
    home = owner.get("/").content.decode()
    assert "asks for read-only break-glass access for 30 minutes" in home
    assert REASON in owner.get("/settings/break-glass/").content.decode()
    assert owner.post(f"/settings/break-glass/{grant.pk}/approve/").status_code == 302
    grant.refresh_from_db()
    assert grant.status == BreakGlassGrant.Status.ACTIVE
    assert grant.decided_by == "owner@acme.test"
    assert abs((grant.expires_at - timezone.now()) - timedelta(minutes=30)) < timedelta(seconds=30)

    assert "Open acme read-only" in console.get("/tenants/acme/").content.decode()
    operator_client = _enter(console, grant)

    page = operator_client.get("/")
    assert page.status_code == 200
    assert (
        f"Break-glass read-only access as operator, ends at {grant.expires_at:%H:%M} UTC"
        in page.content.decode()
    )
    users = operator_client.get("/users/")
    assert users.status_code == 200 and "owner@acme.test" in users.content.decode()
    assert "Break-glass read-only access as operator" in users.content.decode()
    assert operator_client.get("/audit/").status_code == 200
    assert operator_client.get("/api/v1/users/").status_code == 200

    # Read-only whatever the page: no change goes through, not even approving itself.
    assert operator_client.post("/audit/export/", {"format": "jsonl"}).status_code == 403
    assert operator_client.post(f"/settings/break-glass/{grant.pk}/approve/").status_code == 403
    assert operator_client.delete("/api/v1/credentials/1/").status_code == 403
    # ...and the owners' page is not for it either.
    assert operator_client.get("/settings/break-glass/").status_code == 403

    _expire_now(grant)
    ended = operator_client.get("/users/")
    assert ended.status_code == 302 and ended["Location"].startswith("/login/")
    grant.refresh_from_db()
    assert grant.status == BreakGlassGrant.Status.EXPIRED
    again = operator_client.get("/users/")
    assert again.status_code == 302 and again["Location"].startswith("/login/")
    assert "Break-glass" not in operator_client.get("/login/").content.decode()

    for schema in ("public", acme.schema_name):
        actions = _actions(schema, grant)
        assert actions[:3] == [
            "break_glass.requested",
            "break_glass.approved",
            "break_glass.entered",
        ], (schema, actions)
        assert actions[-1] == "break_glass.expired"
        assert actions.count("break_glass.expired") == 1
        with schema_context(schema):
            requests = AuditEvent.objects.filter(
                action="break_glass.request", target_id=str(grant.pk)
            )
            paths = {(e.details["method"], e.details["path"], e.outcome) for e in requests}
            assert ("GET", "/users/", "allowed") in paths
            assert ("GET", "/audit/", "allowed") in paths
            assert ("POST", "/audit/export/", "denied") in paths
            assert {e.actor_kind for e in requests} == {"operator"}
            assert {e.actor_id for e in requests} == {str(_operator().pk)}
            assert all(e.details["grant"] == grant.pk for e in requests)
    # What the audit context records for such a request names the operator too.
    with schema_context(acme.schema_name):
        denied = AuditEvent.objects.filter(
            action="access.denied", details__path="/settings/break-glass/"
        ).get()
        assert denied.actor_kind == "operator" and "operator" in denied.actor_name


@pytest.mark.django_db
def test_it_activates_an_emergency_at_once_and_mails_every_active_owner(
    acme, django_capture_on_commit_callbacks
):
    User = get_user_model()
    with schema_context(acme.schema_name):
        User.objects.create(username="owner2@acme.test", email="owner2@acme.test", role="owner")
        User.objects.create(
            username="gone@acme.test", email="gone@acme.test", role="owner", is_active=False
        )
    console = support.signed_in(None, "operator")
    with django_capture_on_commit_callbacks(execute=True):
        response = _request(console, emergency=True, minutes=15)
    assert response.status_code == 302
    grant = _latest_grant()
    assert grant.emergency and grant.status == BreakGlassGrant.Status.ACTIVE and grant.is_live
    assert abs((grant.expires_at - timezone.now()) - timedelta(minutes=15)) < timedelta(seconds=30)
    recipients = sorted(r for m in mail.outbox for r in m.to)
    assert recipients == ["owner2@acme.test", "owner@acme.test"]
    assert all("Emergency" in m.subject and REASON in m.body for m in mail.outbox)
    for schema in ("public", acme.schema_name):
        assert _actions(schema, grant) == ["break_glass.emergency_declared"]
    # No owner needed: the operator can open it right away, and the owners see it.
    client = _enter(console, grant)
    assert client.get("/users/").status_code == 200
    owner = support.signed_in(acme, "owner@acme.test")
    assert "has read-only break-glass access (emergency)" in owner.get("/").content.decode()


@pytest.mark.django_db
def test_it_lets_only_owners_decide(acme):
    console = support.signed_in(None, "operator")
    _request(console)
    grant = _latest_grant()
    for who in ("admin@acme.test", "analyst@acme.test", "agent@acme.test"):
        client = support.signed_in(acme, who)
        assert client.get("/settings/break-glass/").status_code == 403
        assert client.post(f"/settings/break-glass/{grant.pk}/approve/").status_code == 403
    grant.refresh_from_db()
    assert grant.status == BreakGlassGrant.Status.PENDING
    assert "break-glass" not in support.signed_in(acme, "admin@acme.test").get("/").content.decode()


@pytest.mark.django_db
def test_it_does_not_show_or_decide_a_grant_of_another_tenant(acme, globex):
    console = support.signed_in(None, "operator")
    _request(console, slug="globex")
    grant = _latest_grant()
    owner = support.signed_in(acme, "owner@acme.test")
    assert REASON not in owner.get("/settings/break-glass/").content.decode()
    assert owner.post(f"/settings/break-glass/{grant.pk}/approve/").status_code == 404
    grant.refresh_from_db()
    assert grant.status == BreakGlassGrant.Status.PENDING


@pytest.mark.django_db
def test_it_denies_and_then_nothing_opens(acme):
    console = support.signed_in(None, "operator")
    _request(console)
    grant = _latest_grant()
    owner = support.signed_in(acme, "owner@acme.test")
    owner.post(f"/settings/break-glass/{grant.pk}/deny/")
    grant.refresh_from_db()
    assert grant.status == BreakGlassGrant.Status.DENIED
    response = console.post(f"/tenants/acme/break-glass/{grant.pk}/open/")
    assert response.status_code == 302 and response["Location"] == "/tenants/acme/"
    assert "This grant is not active" in console.get("/tenants/acme/").content.decode()
    for schema in ("public", acme.schema_name):
        assert _actions(schema, grant) == ["break_glass.requested", "break_glass.denied"]


@pytest.mark.django_db
def test_it_refuses_a_replayed_hand_off(acme):
    console = support.signed_in(None, "operator")
    grant = _approved_grant(console, acme)
    token = _handoff_token(console, grant)
    first = support.tenant_client("acme")
    assert first.get("/break-glass/enter/", {"token": token}).status_code == 302
    replay = support.tenant_client("acme")
    refused = replay.get("/break-glass/enter/", {"token": token})
    assert refused.status_code == 403
    assert "not valid" in refused.content.decode()
    assert replay.get("/users/").status_code == 302  # no session came of it
    with schema_context(acme.schema_name):
        event = AuditEvent.objects.filter(action="break_glass.entered", outcome="denied").get()
        assert event.details == {"refused": "replayed"}
        assert not AuditEvent.objects.filter(action="access.denied").exists()


@pytest.mark.django_db
def test_it_refuses_a_hand_off_at_another_tenants_host(acme, globex):
    console = support.signed_in(None, "operator")
    grant = _approved_grant(console, acme)
    token = _handoff_token(console, grant)
    client = support.tenant_client("globex")
    assert client.get("/break-glass/enter/", {"token": token}).status_code == 403
    assert client.get("/users/").status_code == 302
    with schema_context(globex.schema_name):
        event = AuditEvent.objects.filter(action="break_glass.entered").get()
        assert event.outcome == "denied" and event.details == {"refused": "other_tenant"}
    # Shown at the wrong host, the link is spent: it opens nothing at acme either.
    assert (
        support.tenant_client("acme").get("/break-glass/enter/", {"token": token}).status_code
        == 403
    )


@pytest.mark.django_db
def test_it_refuses_a_hand_off_older_than_60_seconds(acme, monkeypatch):
    console = support.signed_in(None, "operator")
    grant = _approved_grant(console, acme)
    monkeypatch.setattr(
        signing.TimestampSigner,
        "timestamp",
        lambda self: signing.b62_encode(int(time.time()) - breakglass.HANDOFF_TTL_SECONDS - 1),
    )
    token = _handoff_token(console, grant)
    monkeypatch.undo()
    client = support.tenant_client("acme")
    assert client.get("/break-glass/enter/", {"token": token}).status_code == 403
    assert client.get("/users/").status_code == 302
    with schema_context(acme.schema_name):
        assert AuditEvent.objects.filter(
            action="break_glass.entered", outcome="denied"
        ).get().details == {"refused": "expired"}


@pytest.mark.django_db
def test_it_refuses_a_forged_hand_off(acme):
    client = support.tenant_client("acme")
    forged = signing.dumps({"g": 1, "t": acme.pk, "o": 1, "n": "x"}, salt="another-salt")
    assert client.get("/break-glass/enter/", {"token": forged}).status_code == 403
    assert client.get("/break-glass/enter/").status_code == 403


@pytest.mark.django_db
def test_it_keeps_a_break_glass_session_out_of_another_tenant(acme, globex):
    console = support.signed_in(None, "operator")
    grant = _approved_grant(console, acme)
    client = _enter(console, grant)
    assert client.get("/users/").status_code == 200
    # The session cookie taken to another tenant's host: no such session exists there.
    carried = support.tenant_client("globex")
    carried.cookies[settings.SESSION_COOKIE_NAME] = client.cookies[
        settings.SESSION_COOKIE_NAME
    ].value
    other = carried.get("/users/")
    assert other.status_code == 302 and other["Location"].startswith("/login/")
    assert carried.get("/audit/").status_code == 302
    # Even a session that names the grant at another host is ended, not honoured.
    stray = support.tenant_client("globex")
    session = stray.session
    session[breakglass.SESSION_KEY] = grant.pk
    session.save()
    response = stray.get("/users/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert stray.get("/users/").status_code == 302
    # The session at acme is untouched by all that.
    assert client.get("/users/").status_code == 200


@pytest.mark.django_db
def test_it_ends_sessions_when_the_operator_or_an_owner_ends_the_grant(acme):
    console = support.signed_in(None, "operator")
    grant = _approved_grant(console, acme)
    client = _enter(console, grant)
    assert console.post(f"/tenants/acme/break-glass/{grant.pk}/end/").status_code == 302
    grant.refresh_from_db()
    assert grant.status == BreakGlassGrant.Status.ENDED and not grant.is_live
    assert client.get("/users/").status_code == 302
    assert client.get("/api/v1/users/").status_code in (302, 401, 403)

    grant = _approved_grant(console, acme)
    client = _enter(console, grant)
    owner = support.signed_in(acme, "owner@acme.test", step_up=False)  # ending needs no step-up
    assert owner.post(f"/settings/break-glass/{grant.pk}/end/").status_code == 302
    grant.refresh_from_db()
    assert grant.status == BreakGlassGrant.Status.ENDED
    response = client.get("/api/v1/users/")
    assert response.status_code == 401 and response.json()["code"] == "break_glass_ended"
    for schema in ("public", acme.schema_name):
        assert _actions(schema, grant)[-1] == "break_glass.ended"


@pytest.mark.django_db
def test_it_signs_out_of_the_session_without_ending_the_grant(acme):
    console = support.signed_in(None, "operator")
    grant = _approved_grant(console, acme)
    client = _enter(console, grant)
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"].endswith("localhost:8000/tenants/acme/")
    assert client.get("/users/").status_code == 302
    grant.refresh_from_db()
    assert grant.is_live


@pytest.mark.django_db
def test_it_checks_csrf_on_the_break_glass_sign_out(acme):
    console = support.signed_in(None, "operator")
    grant = _approved_grant(console, acme)
    client = Client(HTTP_HOST="acme.localhost", enforce_csrf_checks=True)
    token = _handoff_token(console, grant)
    assert client.get("/break-glass/enter/", {"token": token}).status_code == 302
    assert client.post("/logout/").status_code == 403
    assert client.get("/users/").status_code == 200
    csrf = client.cookies[settings.CSRF_COOKIE_NAME].value
    assert client.post("/logout/", {"csrfmiddlewaretoken": csrf}).status_code == 302
    assert client.get("/users/").status_code == 302


@pytest.mark.django_db
def test_the_beat_task_expires_overdue_grants_on_both_trails(acme, globex):
    console = support.signed_in(None, "operator")
    _request(console, slug="acme", emergency=True)
    overdue = _latest_grant()
    _request(console, slug="globex", emergency=True)
    live = _latest_grant()
    _expire_now(overdue)

    assert break_glass_expire_due() == 1
    assert break_glass_expire_due() == 0  # idempotent
    overdue.refresh_from_db()
    live.refresh_from_db()
    assert overdue.status == BreakGlassGrant.Status.EXPIRED
    assert live.status == BreakGlassGrant.Status.ACTIVE
    for schema in ("public", acme.schema_name):
        assert _actions(schema, overdue)[-1] == "break_glass.expired"
        with schema_context(schema):
            event = AuditEvent.objects.get(action="break_glass.expired", target_id=str(overdue.pk))
            assert event.actor_kind == "system"
    assert _actions(globex.schema_name, live) == ["break_glass.emergency_declared"]


@pytest.mark.django_db
def test_it_sends_an_operator_without_step_up_to_step_up(acme):
    console = support.signed_in(None, "operator", step_up=False)
    response = _request(console)
    assert response.status_code == 302
    assert response["Location"].startswith("/mfa/step-up/?next=")
    assert not BreakGlassGrant.objects.exists()

    fresh = support.signed_in(None, "operator")
    grant = _approved_grant(fresh, acme)
    response = console.post(f"/tenants/acme/break-glass/{grant.pk}/open/")
    assert response["Location"].startswith("/mfa/step-up/?next=")


@pytest.mark.django_db
def test_it_sends_an_owner_without_step_up_to_step_up(acme):
    console = support.signed_in(None, "operator")
    _request(console)
    grant = _latest_grant()
    owner = support.signed_in(acme, "owner@acme.test", step_up=False)
    for verb in ("approve", "deny"):
        response = owner.post(f"/settings/break-glass/{grant.pk}/{verb}/")
        assert response.status_code == 302 and response["Location"].startswith("/mfa/step-up/")
    grant.refresh_from_db()
    assert grant.status == BreakGlassGrant.Status.PENDING


@pytest.mark.django_db
def test_it_refuses_bad_requests_and_a_second_open_grant(acme):
    console = support.signed_in(None, "operator")
    assert _request(console, reason="because").status_code == 302
    assert _request(console, minutes=5).status_code == 302
    assert _request(console, minutes=241).status_code == 302
    assert not BreakGlassGrant.objects.exists()
    _request(console)
    _request(console)
    assert BreakGlassGrant.objects.count() == 1
    assert "already have a pending or active" in console.get("/tenants/acme/").content.decode()


@pytest.mark.django_db
def test_it_ends_the_session_of_a_deactivated_operator(acme):
    console = support.signed_in(None, "operator")
    grant = _approved_grant(console, acme)
    client = _enter(console, grant)
    assert client.get("/users/").status_code == 200
    with schema_context("public"):
        get_user_model().objects.filter(username="operator").update(is_active=False)
    assert client.get("/users/").status_code == 302


@pytest.mark.django_db
def test_it_keeps_other_operators_out_of_a_grant(acme):
    console = support.signed_in(None, "operator")
    grant = _approved_grant(console, acme)
    with schema_context("public"):
        get_user_model().objects.create(username="other-op", email="other-op@parley.test")
    other = support.signed_in(None, "other-op")
    assert other.post(f"/tenants/acme/break-glass/{grant.pk}/open/").status_code == 404
    assert other.post(f"/tenants/acme/break-glass/{grant.pk}/end/").status_code == 404
    assert "Open acme read-only" not in other.get("/tenants/acme/").content.decode()


def _state_cell(html: str, grant: BreakGlassGrant) -> str:
    row = re.search(rf"<tr>\s*<td>{grant.pk}</td>(.*?)</tr>", html, re.S)
    assert row, html[:3000]
    return re.sub(r"<[^>]+>", "", row.group(1))


@pytest.mark.django_db
def test_it_credits_whoever_ended_the_grant(acme):
    """The operator clicked "End now"; the pages said "Ended by owner@…" (the approver)."""
    console = support.signed_in(None, "operator")
    owner = support.signed_in(acme, "owner@acme.test")
    grant = _approved_grant(console, acme)
    assert console.post(f"/tenants/acme/break-glass/{grant.pk}/end/").status_code == 302
    grant.refresh_from_db()
    assert grant.ended_by == "operator@parley.test" and grant.decided_by == "owner@acme.test"
    for html in (
        console.get("/tenants/acme/").content.decode(),
        owner.get("/settings/break-glass/").content.decode(),
    ):
        cell = _state_cell(html, grant)
        assert "Ended by operator@parley.test" in " ".join(cell.split())
        assert "owner@acme.test" not in cell

    grant = _approved_grant(console, acme)
    assert "Active by owner@acme.test" in " ".join(
        _state_cell(console.get("/tenants/acme/").content.decode(), grant).split()
    )
    assert owner.post(f"/settings/break-glass/{grant.pk}/end/").status_code == 302
    cell = _state_cell(console.get("/tenants/acme/").content.decode(), grant)
    assert "Ended by owner@acme.test" in " ".join(cell.split())
    with schema_context("public"):
        ended = AuditEvent.objects.filter(action="break_glass.ended", target_id=str(grant.pk)).get()
        assert ended.details["ended_by"] == "owner@acme.test" and ended.actor_kind == "user"


@pytest.mark.django_db
def test_it_names_the_operator_once_on_the_owners_pages_and_the_platform_trail(acme):
    """ "Parley operator operator" on the owner's banner, "operator operator" in the trail."""
    console = support.signed_in(None, "operator")
    assert _request(console).status_code == 302
    owner = support.signed_in(acme, "owner@acme.test")
    home = " ".join(owner.get("/").content.decode().split())
    assert "A Parley operator (operator@parley.test) asks for read-only break-glass access" in home
    assert "operator operator" not in home
    connection.set_schema_to_public()
    trail = " ".join(re.sub(r"<[^>]+>", " ", console.get("/audit/").content.decode()).split())
    assert "break_glass.requested" in trail
    assert "operator operator" not in trail
