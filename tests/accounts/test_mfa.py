"""MFA: enrolment straight after the password, verification, one use per code,
throttling and lock, step-up, backup codes, reset, and the tenant policy."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_otp.oath import TOTP
from django_tenants.utils import schema_context, tenant_context

from accounts import mfa, services
from accounts.mfa import SESSION_OTP_AT
from accounts.models import BackupCodeDevice, TOTPDevice
from audit.models import AuditEvent
from tests import support

pytestmark = pytest.mark.django_db


def _password_login(tenant, email):
    client = support.tenant_client(tenant.slug) if tenant else support.console_client()
    response = client.post("/login/", {"username": email, "password": support.PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return client


def _device(tenant, email):
    with schema_context(tenant.schema_name if tenant else "public"):
        user = get_user_model().objects.get(
            **({"email": email} if "@" in email else {"username": email})
        )
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    connection.set_schema_to_public()
    return device


def _code_at(device, offset_steps=0):
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():06d}"


def test_an_owner_goes_to_enrolment_right_after_the_password_and_nowhere_else(acme):
    client = _password_login(acme, "owner@acme.test")
    for path in ["/", "/users/", "/audit/", "/settings/security/", "/inboxes/"]:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/mfa/enrol/"), path
    api = client.get("/api/v1/me/")
    assert api.status_code == 401 and api.json()["code"] == "mfa_required"

    page = client.get("/mfa/enrol/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html  # the QR code, inline
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    with tenant_context(acme):
        device = TOTPDevice.objects.get(user__email="owner@acme.test", confirmed=False)
        from base64 import b32decode

        assert b32decode(secret + "=" * (-len(secret) % 8)) == device.bin_key
    connection.set_schema_to_public()

    wrong = client.post(
        "/mfa/enrol/", {"code": "000000" if _code_at(device) != "000000" else "111111"}
    )
    assert wrong.status_code == 400 and "not right" in wrong.content.decode()
    time.sleep(1.1)  # a wrong code slows the device down (1 s after the first)
    done = client.post("/mfa/enrol/", {"code": _code_at(device), "next": "/users/"})
    assert done.status_code == 302
    codes_page = client.get(done["Location"])
    codes = re.findall(r"<li><code>([a-z0-9]+)</code></li>", codes_page.content.decode())
    assert len(codes) == 10
    assert client.post("/mfa/enrol/", {"next": "/users/"})["Location"] == "/users/"
    assert client.get("/users/").status_code == 200
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="auth.mfa.enrolled").exists()
        assert AuditEvent.objects.filter(action="auth.mfa.failed").exists()


def test_a_code_is_accepted_once(acme):
    device = _device(acme, "admin@acme.test")
    code = _code_at(device)
    first = _password_login(acme, "admin@acme.test")
    assert first.post("/mfa/verify/", {"code": code})["Location"] == "/"
    assert first.get("/").status_code == 200

    second = _password_login(acme, "admin@acme.test")
    replay = second.post("/mfa/verify/", {"code": code})
    assert replay.status_code == 400 and "already used" in replay.content.decode()
    assert second.get("/").status_code == 302


def test_a_backup_code_signs_in_once(acme):
    _device(acme, "analyst@acme.test")
    with tenant_context(acme):
        codes = mfa.backup_codes_create(get_user_model().objects.get(email="analyst@acme.test"))
    connection.set_schema_to_public()
    client = _password_login(acme, "analyst@acme.test")
    assert client.post("/mfa/verify/", {"code": codes[0]}).status_code == 302
    again = _password_login(acme, "analyst@acme.test")
    assert again.post("/mfa/verify/", {"code": codes[0]}).status_code == 400
    with tenant_context(acme):
        assert (
            BackupCodeDevice.objects.get(
                user__email="analyst@acme.test", name="backup"
            ).codes.count()
            == 9
        )


def test_wrong_codes_lock_the_account_and_sign_the_attempt_out(acme, settings):
    settings.PARLEY_LOGIN_MAX_FAILURES = 3
    device = _device(acme, "integrator@acme.test")
    client = _password_login(acme, "integrator@acme.test")
    bad = "000000" if _code_at(device) != "000000" else "111111"
    assert client.post("/mfa/verify/", {"code": bad}).status_code == 400
    assert client.post("/mfa/verify/", {"code": bad}).status_code == 400
    locked = client.post("/mfa/verify/", {"code": bad})
    assert locked.status_code == 302 and locked["Location"] == "/login/"
    # Even the right password now meets the lock; an admin lifts it.
    again = support.tenant_client("acme").post(
        "/login/", {"username": "integrator@acme.test", "password": support.PASSWORD}
    )
    assert again.status_code == 200 and "Too many failed sign-ins" in again.content.decode()
    from django.core.management import call_command

    call_command("accounts_unlock", "--tenant", "acme", "--username", "integrator@acme.test")
    assert _password_login(acme, "integrator@acme.test").get("/").status_code == 302


def test_the_device_slows_down_after_a_wrong_code(acme):
    device = _device(acme, "marketer@acme.test")
    with tenant_context(acme):
        user = get_user_model().objects.get(email="marketer@acme.test")
        assert mfa.verify(user, "000000" if _code_at(device) != "000000" else "111111") is None
        # Within the throttle delay even the right code is refused.
        assert mfa.verify(user, _code_at(device)) is None
        assert mfa.verify_is_throttled(user)


def test_an_operator_must_enrol_too():
    client = _password_login(None, "operator")
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/mfa/enrol/")


def test_the_policy_decides_for_agents_but_never_for_admins(acme):
    agent = _password_login(acme, "agent@acme.test")
    assert agent.get("/")["Location"].startswith("/mfa/enrol/")
    with tenant_context(acme):
        owner = get_user_model().objects.get(email="owner@acme.test")
        services.security_policy_set(by=owner, mfa_roles=["agent"])
        policy, changed = services.security_policy_set(by=owner, mfa_roles=[])
        assert changed and set(policy.mfa_roles) == {"owner", "admin"}
        assert AuditEvent.objects.filter(action="security.policy_changed").count() == 2
    connection.set_schema_to_public()
    assert _password_login(acme, "agent@acme.test").get("/").status_code == 200
    assert _password_login(acme, "admin@acme.test").get("/")["Location"].startswith("/mfa/enrol/")


def test_the_policy_page_is_for_owners_behind_step_up(acme):
    stale = support.signed_in(acme, "owner@acme.test", step_up=False)
    assert stale.get("/settings/mfa/").status_code == 200  # reading needs no fresh code
    detour = stale.post("/settings/mfa/", {"mfa_roles": ["agent"]})
    assert detour.status_code == 302 and detour["Location"].startswith("/mfa/step-up/")
    assert support.signed_in(acme, "admin@acme.test").get("/settings/mfa/").status_code == 403
    owner = support.signed_in(acme, "owner@acme.test")
    assert owner.post("/settings/mfa/", {"mfa_roles": ["agent", "bogus"]}).status_code == 302
    with tenant_context(acme):
        from accounts.models import SecurityPolicy

        assert SecurityPolicy.objects.get().mfa_roles == ["admin", "agent", "owner"]


def test_saving_an_unchanged_policy_records_nothing_and_says_so(acme):
    owner = support.signed_in(acme, "owner@acme.test")
    saved = owner.post("/settings/mfa/", {"mfa_roles": ["agent"]}, follow=True)
    assert "MFA policy saved." in saved.content.decode()
    with tenant_context(acme):
        count = AuditEvent.objects.filter(action="security.policy_changed").count()
    # The same choice again (owner and admin are implied): no event, and the page says so.
    again = owner.post("/settings/mfa/", {"mfa_roles": ["agent", "owner"]}, follow=True)
    page = again.content.decode()
    assert "No changes: the MFA policy is as it was." in page and "MFA policy saved." not in page
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="security.policy_changed").count() == count
        owner_user = get_user_model().objects.get(email="owner@acme.test")
        _, changed = services.security_policy_set(by=owner_user, mfa_roles=["owner", "agent"])
        assert not changed
        assert AuditEvent.objects.filter(action="security.policy_changed").count() == count


def test_step_up_asks_for_a_fresh_code_then_returns(acme):
    client = support.signed_in(acme, "owner@acme.test", step_up=False)
    referer = {"HTTP_REFERER": "http://acme.localhost/settings/mfa/"}
    detour = client.post("/settings/mfa/", {"mfa_roles": ["agent"]}, **referer)
    assert re.fullmatch(r"/mfa/step-up/\?next=/settings/mfa/&resume=[\w-]+", detour["Location"])
    with tenant_context(acme):
        device = TOTPDevice.objects.get(user__email="owner@acme.test")
    connection.set_schema_to_public()
    wrong = client.post("/mfa/step-up/", {"code": "abc", "next": "/settings/mfa/"})
    assert wrong.status_code == 400
    ok = client.post("/mfa/step-up/", {"code": _code_at(device), "next": "/settings/mfa/"})
    assert ok["Location"] == "/settings/mfa/"
    assert client.post("/settings/mfa/", {"mfa_roles": ["agent"]}, **referer)["Location"] == (
        "/settings/mfa/"
    )
    # Five minutes later it is stale again.
    session = client.session
    session[SESSION_OTP_AT] = int(time.time()) - 301
    with tenant_context(acme):
        session.save()
    connection.set_schema_to_public()
    assert client.post("/settings/mfa/", {}, **referer)["Location"].startswith("/mfa/step-up/")


def test_step_up_refuses_an_offsite_next(acme):
    client = support.signed_in(acme, "owner@acme.test", step_up=False)
    with tenant_context(acme):
        device = TOTPDevice.objects.get(user__email="owner@acme.test")
    connection.set_schema_to_public()
    ok = client.post("/mfa/step-up/", {"code": _code_at(device), "next": "https://evil.example/"})
    assert ok["Location"] == "/"


def test_resetting_my_device_needs_step_up_and_ends_my_other_sessions(
    acme, django_capture_on_commit_callbacks
):
    other = support.signed_in(acme, "admin@acme.test")
    assert other.get("/").status_code == 200
    with tenant_context(acme):
        user = get_user_model().objects.get(email="admin@acme.test")
        device = TOTPDevice.objects.get(user=user)
    connection.set_schema_to_public()
    me = support.tenant_client("acme")
    support.signed_in(acme, user, client=me, step_up=False)
    assert me.post("/mfa/reset/")["Location"].startswith("/mfa/step-up/")
    # A fresh code, then the reset.
    assert me.post("/mfa/step-up/", {"code": _code_at(device)}).status_code == 302
    done = me.post("/mfa/reset/")
    assert done["Location"] == "/mfa/enrol/"
    with tenant_context(acme):
        assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        assert AuditEvent.objects.filter(action="auth.mfa.reset").exists()
    connection.set_schema_to_public()
    assert other.get("/")["Location"].startswith("/login/")  # the other session ended
    assert me.get("/")["Location"].startswith("/mfa/enrol/")  # this one must enrol again


def _with_session(tenant, session_key):
    """A fresh client that presents only ``session_key`` (as whoever saw that id would)."""
    client = support.tenant_client(tenant.slug)
    client.cookies["sessionid"] = session_key
    return client


def test_verifying_the_second_factor_gives_the_session_a_new_key(acme):
    device = _device(acme, "admin@acme.test")
    client = _password_login(acme, "admin@acme.test")
    pre_mfa = client.cookies["sessionid"].value
    assert _with_session(acme, pre_mfa).get("/")["Location"].startswith("/mfa/verify/")

    assert client.post("/mfa/verify/", {"code": _code_at(device)})["Location"] == "/"
    signed_in = client.cookies["sessionid"].value
    assert signed_in != pre_mfa
    assert client.get("/").status_code == 200
    # The pre-MFA id is gone: it opens nothing, not even the code page.
    stale = _with_session(acme, pre_mfa)
    assert stale.get("/")["Location"].startswith("/login/")
    assert stale.get("/users/")["Location"].startswith("/login/")


def test_enrolling_gives_the_session_a_new_key(acme):
    client = _password_login(acme, "owner@acme.test")
    pre_mfa = client.cookies["sessionid"].value
    client.get("/mfa/enrol/")
    with tenant_context(acme):
        device = TOTPDevice.objects.get(user__email="owner@acme.test", confirmed=False)
    connection.set_schema_to_public()
    assert client.post("/mfa/enrol/", {"code": _code_at(device)}).status_code == 302
    assert client.cookies["sessionid"].value != pre_mfa
    assert _with_session(acme, pre_mfa).get("/")["Location"].startswith("/login/")


def test_step_up_gives_the_session_a_new_key(acme):
    client = support.signed_in(acme, "owner@acme.test", step_up=False)
    before = client.cookies["sessionid"].value
    with tenant_context(acme):
        device = TOTPDevice.objects.get(user__email="owner@acme.test")
    connection.set_schema_to_public()
    ok = client.post("/mfa/step-up/", {"code": _code_at(device), "next": "/settings/mfa/"})
    assert ok["Location"] == "/settings/mfa/"
    assert client.cookies["sessionid"].value != before
    assert client.get("/settings/mfa/").status_code == 200
    # The old id neither carries the fresh step-up nor stays signed in.
    stale = _with_session(acme, before)
    response = stale.post("/settings/mfa/", {"mfa_roles": ["agent"]})
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def _stale_token(tenant, email) -> str:
    """An access token whose one-time code was given ten minutes ago: step-up is stale."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts import revocation, tokens
    from accounts.models import TokenFamily

    with tenant_context(tenant):
        user = get_user_model().objects.get(email=email)
        family = TokenFamily.objects.create(
            id=f"stale{user.pk:027d}", user=user, expires_at=timezone.now() + timedelta(hours=1)
        )
        pair = tokens._pair(
            user_id=user.pk,
            family=family,
            epoch=revocation.current(user.pk),
            mfa_at=int(time.time()) - 600,
        )
    connection.set_schema_to_public()
    return pair.access


@pytest.mark.usefixtures("fresh_counters")
def test_codes_in_the_otp_header_count_towards_the_lock_and_are_audited(acme, settings):
    settings.PARLEY_LOGIN_MAX_FAILURES = 3
    device = _device(acme, "owner@acme.test")
    access = _stale_token(acme, "owner@acme.test")
    with tenant_context(acme):
        target = get_user_model().objects.get(email="agent@acme.test").pk
    connection.set_schema_to_public()
    client = support.tenant_client("acme")

    def patch(code):
        return client.patch(
            f"/api/v1/users/{target}/",
            {"is_active": True},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {access}",
            HTTP_X_PARLEY_OTP=code,
        )

    ok = patch(_code_at(device))
    assert ok.status_code == 200, ok.content
    bad = "000000" if _code_at(device) != "000000" else "111111"
    for _ in range(3):
        wrong = patch(bad)
        assert wrong.status_code == 403 and wrong.json()["code"] == "step_up_required"
    # Locked now, like the code pages: not even the right code is checked.
    time.sleep(1.1)
    locked = patch(_code_at(device, offset_steps=1))
    assert locked.status_code == 429 and locked.json()["code"] == "locked"
    assert int(locked["Retry-After"]) == settings.PARLEY_LOGIN_LOCK_SECONDS
    page = support.tenant_client("acme").post(
        "/login/", {"username": "owner@acme.test", "password": support.PASSWORD}
    )
    assert page.status_code == 200 and "Too many failed sign-ins" in page.content.decode()
    with tenant_context(acme):
        failed = list(AuditEvent.objects.filter(action="auth.mfa.failed").order_by("id"))
        step_ups = AuditEvent.objects.filter(action="auth.mfa.step_up")
        assert [e.details.get("via") for e in failed] == ["X-Parley-OTP"] * 4
        assert [e.details.get("reason") for e in failed] == [None, None, None, "locked"]
        assert all(e.outcome == "denied" for e in failed)
        assert step_ups.filter(details__via="X-Parley-OTP").count() == 1
        assert bad not in str([e.details for e in failed])  # never the code itself
