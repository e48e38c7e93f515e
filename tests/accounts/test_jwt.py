"""API tokens: sign-in with a one-time code, tenant binding, strict verification,
rotation with reuse detection, absolute expiry, revocation by epoch and sign-out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta

import jwt
import pytest
import redis as redis_lib
from django.conf import settings
from django.conf import settings as dj_settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts import revocation, tokens
from accounts.authentication import TenantJWTAuthentication
from accounts.models import SecurityPolicy, TokenFamily, TOTPDevice
from accounts.tasks import tokens_purge
from accounts.throttles import delete_raw
from accounts.tokens import snapshot_key
from audit.models import AuditEvent
from parley.keyring import signing
from tenants.models import Tenant
from tests import support

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_counters")]

TOKEN, REFRESH, REVOKE, ME = (
    "/api/v1/auth/token/",
    "/api/v1/auth/token/refresh/",
    "/api/v1/auth/token/revoke/",
    "/api/v1/me/",
)


@pytest.fixture
def no_mfa(acme):
    """acme's policy asks only owners and admins (always) for MFA: agents sign in with a password."""
    with tenant_context(acme):
        SecurityPolicy.objects.update_or_create(pk=1, defaults={"mfa_roles": []})
    connection.set_schema_to_public()


def _device(tenant, email) -> TOTPDevice:
    with tenant_context(tenant):
        user = get_user_model().objects.get(email=email)
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    connection.set_schema_to_public()
    return device


def _sign_in(slug, email, *, otp=None, password=support.PASSWORD, **extra):
    body = {"username": email, "password": password}
    if otp is not None:
        body["otp"] = otp
    return support.tenant_client(slug).post(TOKEN, body, content_type="application/json", **extra)


def _pair(slug, email, **kwargs) -> dict:
    response = _sign_in(slug, email, **kwargs)
    assert response.status_code == 200, response.content
    return response.json()


def _me(slug, access, **extra):
    return support.tenant_client(slug).get(ME, HTTP_AUTHORIZATION=f"Bearer {access}", **extra)


def _post(slug, path, refresh):
    return support.tenant_client(slug).post(
        path, {"refresh": refresh}, content_type="application/json"
    )


def _claims(tenant, raw, cls=tokens.TenantAccessToken) -> dict:
    with tenant_context(tenant):
        payload = dict(cls(raw).payload)
    connection.set_schema_to_public()
    return payload


def _family(tenant, family_id) -> TokenFamily:
    with tenant_context(tenant):
        family = TokenFamily.objects.get(pk=family_id)
    connection.set_schema_to_public()
    return family


def _events(tenant, action):
    with tenant_context(tenant):
        events = list(AuditEvent.objects.filter(action=action).order_by("id"))
    connection.set_schema_to_public()
    return events


def _refused(response, code, status=401):
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")


# --- sign-in ---------------------------------------------------------------------------------------


def test_it_issues_a_pair_for_a_password_and_a_one_time_code(acme):
    device = _device(acme, "agent@acme.test")
    pair = _pair("acme", "agent@acme.test", otp=support.totp_now(device))
    assert pair["token_type"] == "Bearer" and pair["expires_in"] == 300

    me = _me("acme", pair["access"])
    assert me.status_code == 200 and me.json()["email"] == "agent@acme.test"

    access, refresh = (
        _claims(acme, pair["access"]),
        _claims(acme, pair["refresh"], tokens.TenantRefreshToken),
    )
    assert access["aud"] == f"parley:{acme.schema_name}" and access["token_type"] == "access"
    assert access["exp"] - access["iat"] == 300
    family = _family(acme, refresh["fam"])
    assert abs(family.expires_at - family.created_at - timedelta(hours=12)) < timedelta(seconds=1)
    assert refresh["exp"] == int(family.expires_at.timestamp())  # the sign-in's absolute end
    assert access["fam"] == refresh["fam"] and abs(access["mfa_at"] - access["iat"]) <= 2
    issued = _events(acme, "auth.token.issued")[-1]
    assert issued.details == {"family": access["fam"], "mfa": True}
    assert pair["access"] not in json.dumps(issued.details) and support.PASSWORD not in str(
        issued.details
    )


def test_it_refuses_a_code_used_twice(acme):
    device = _device(acme, "agent@acme.test")
    code = support.totp_now(device)
    assert _sign_in("acme", "agent@acme.test", otp=code).status_code == 200
    _refused(_sign_in("acme", "agent@acme.test", otp=code), "invalid_otp")


def test_it_refuses_a_wrong_or_missing_code_and_records_it(acme):
    device = _device(acme, "agent@acme.test")
    right = support.totp_now(device)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    _refused(_sign_in("acme", "agent@acme.test"), "otp_required")
    _refused(_sign_in("acme", "agent@acme.test", otp=wrong), "invalid_otp")
    reasons = [e.details["reason"] for e in _events(acme, "auth.token.failed")]
    assert reasons[-2:] == ["otp_missing", "otp_invalid"]
    assert all(e.outcome == "failed" for e in _events(acme, "auth.token.failed"))


def test_it_asks_users_who_must_use_mfa_to_enrol_first(acme):
    # The default policy asks every role; owners and admins are asked whatever it says.
    _refused(_sign_in("acme", "agent@acme.test"), "mfa_enrolment_required", status=403)
    _refused(_sign_in("acme", "admin@acme.test"), "mfa_enrolment_required", status=403)
    assert _events(acme, "auth.token.failed")[-1].details["reason"] == "mfa_enrolment_required"


def test_it_needs_no_code_from_a_user_the_policy_spares(acme, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    assert "mfa_at" not in _claims(acme, pair["access"])
    assert _me("acme", pair["access"]).status_code == 200
    _refused(_sign_in("acme", "admin@acme.test"), "mfa_enrolment_required", status=403)


@override_settings(PARLEY_LOGIN_MAX_FAILURES=2)
def test_it_refuses_a_wrong_password_and_respects_the_lockout(acme, no_mfa):
    for _ in range(2):
        _refused(
            _sign_in("acme", "agent@acme.test", password="not-it-at-all"), "invalid_credentials"
        )
    locked = _sign_in("acme", "agent@acme.test")  # the right password, too late
    assert locked.status_code == 429 and locked.json()["code"] == "locked"
    assert int(locked["Retry-After"]) == settings.PARLEY_LOGIN_LOCK_SECONDS
    reasons = [e.details["reason"] for e in _events(acme, "auth.token.failed")][-3:]
    assert reasons == ["credentials", "credentials", "locked"]
    assert not any(
        "not-it-at-all" in json.dumps(e.details) for e in _events(acme, "auth.token.failed")
    )
    # Another account is not locked.
    assert _sign_in("acme", "marketer@acme.test").status_code == 200


def test_it_refuses_an_unknown_user_and_an_inactive_one_alike(acme, no_mfa):
    _refused(_sign_in("acme", "nobody@acme.test"), "invalid_credentials")
    with tenant_context(acme):
        get_user_model().objects.filter(email="agent@acme.test").update(is_active=False)
    connection.set_schema_to_public()
    _refused(_sign_in("acme", "agent@acme.test"), "invalid_credentials")


# --- verification ----------------------------------------------------------------------------------


def test_it_refuses_an_expired_access_token(acme, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    with tenant_context(acme):
        token = tokens.TenantAccessToken(pair["access"])
        token.set_exp(from_time=timezone.now() - timedelta(seconds=1), lifetime=timedelta(0))
        expired = str(token)
    connection.set_schema_to_public()
    _refused(_me("acme", expired), "token_expired")
    assert _me("acme", pair["access"]).status_code == 200


def test_it_keeps_a_token_at_its_own_tenant(acme, globex, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    _refused(_me("globex", pair["access"]), "token_invalid")
    claims = _claims(acme, pair["access"])
    # globex's key with acme's audience, and acme's key with globex's audience: both refused at globex.
    for key_of, aud_of in ((globex, acme), (acme, globex)):
        kid, key = _tenant_key(key_of)
        forged = jwt.encode(
            {**claims, "aud": tokens.audience(aud_of.schema_name)},
            key,
            algorithm="HS256",
            headers={"kid": kid},
        )
        _refused(_me("globex", forged), "token_invalid")
    # A session cookie of acme opens nothing at globex either; the token still works at home.
    assert _me("acme", pair["access"]).status_code == 200


def test_it_refuses_tokens_where_there_is_no_tenant(acme, no_mfa):


    pair = _pair("acme", "agent@acme.test")
    request = APIRequestFactory().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    request.tenant = Tenant.objects.get(schema_name="public")
    connection.set_schema_to_public()
    with pytest.raises(AuthenticationFailed):
        TenantJWTAuthentication().authenticate(Request(request))
    # Below the view too: no tenant's key is reachable from the public schema.
    with pytest.raises(tokens.TokenRefused):
        tokens.authenticate_access(pair["access"])


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _tenant_key(tenant) -> tuple[str, bytes]:
    """The kid and key that sign ``tenant``'s tokens (from the keyring)."""
    with tenant_context(tenant):
        found = signing.signing_key(tenant.schema_name)
    connection.set_schema_to_public()
    return found


def _old_derivation(schema: str) -> bytes:
    """How tokens were signed before the keyring held the keys: from SECRET_KEY."""
    return hmac.new(
        settings.SECRET_KEY.encode(), b"parley-jwt|" + schema.encode(), hashlib.sha256
    ).digest()


def _sign(claims: dict, key, *, kid="", alg="HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid} if kid else None)


def _sign_raw(header: dict, claims: dict, key: bytes) -> str:
    """HS256 over any header, even one PyJWT would not write."""
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _forgeries(acme, pair) -> dict[str, str]:
    claims = _claims(acme, pair["access"])
    kid, key = _tenant_key(acme)
    header, body, signature = pair["access"].split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    without_epoch = {k: v for k, v in claims.items() if k != "epc"}
    old = _old_derivation(acme.schema_name)
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}.",
        "alg None, signature kept": f"{_b64({'alg': 'None', 'kid': kid})}.{body}.{signature}",
        "HS512 with the right key": _sign(claims, key, kid=kid, alg="HS512"),
        "RS256 header on an HMAC signature": f"{_b64({'alg': 'RS256', 'typ': 'JWT', 'kid': kid})}.{body}.{signature}",
        "tampered signature": f"{header}.{body}.{flipped}",
        "tampered claims": f"{header}.{_b64({**claims, 'user_id': '1'})}.{signature}",
        "platform key instead of the tenant's": _sign(claims, settings.SECRET_KEY, kid=kid),
        "platform key without a kid": _sign(claims, settings.SECRET_KEY),
        "old SECRET_KEY derivation": _sign(claims, old),
        "old SECRET_KEY derivation with the tenant's kid": _sign(claims, old, kid=kid),
        "the right key without a kid": _sign(claims, key),
        "the right key under an unknown kid": _sign(claims, key, kid="v999"),
        "the right key under a kid that is no version": _sign(claims, key, kid="../v1"),
        "the right key under a number kid": _sign_raw({"alg": "HS256", "kid": 1}, claims, key),
        "the right key under a kid with a NUL": _sign(claims, key, kid=kid + "\x00"),
        "a header that is a list": f"{_b64([{'alg': 'HS256', 'kid': kid}])}.{body}.{signature}",
        "a huge header": f"{_b64({'alg': 'HS256', 'kid': kid, 'x': 'y' * 5000})}.{body}.{signature}",
        "refresh token as access": pair["refresh"],
        "no epoch claim": _sign(without_epoch, key, kid=kid),
        "epoch claim as a string": _sign({**claims, "epc": str(claims["epc"])}, key, kid=kid),
        "no audience": _sign({k: v for k, v in claims.items() if k != "aud"}, key, kid=kid),
        "garbage": "not.a.token",
    }


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the HS512 forgery
@pytest.mark.parametrize(
    "kind",
    [
        "alg none",
        "alg None, signature kept",
        "HS512 with the right key",
        "RS256 header on an HMAC signature",
        "tampered signature",
        "tampered claims",
        "platform key instead of the tenant's",
        "platform key without a kid",
        "old SECRET_KEY derivation",
        "old SECRET_KEY derivation with the tenant's kid",
        "the right key without a kid",
        "the right key under an unknown kid",
        "the right key under a kid that is no version",
        "the right key under a number kid",
        "the right key under a kid with a NUL",
        "a header that is a list",
        "a huge header",
        "refresh token as access",
        "no epoch claim",
        "epoch claim as a string",
        "no audience",
        "garbage",
    ],
)
def test_it_refuses_forged_and_misused_tokens(acme, no_mfa, kind):
    pair = _pair("acme", "agent@acme.test")
    response = _me("acme", _forgeries(acme, pair)[kind])
    _refused(response, "token_invalid")
    assert _me("acme", pair["access"]).status_code == 200  # the genuine one still works


def _well_signed(acme, claims: dict) -> str:
    """A token signed with acme's real key: what someone holding the key could make."""
    kid, key = _tenant_key(acme)
    return _sign(claims, key, kid=kid)


def test_it_refuses_a_well_signed_token_whose_epoch_is_ahead(acme, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    claims = _claims(acme, pair["access"])
    ahead = _well_signed(acme, {**claims, "epc": claims["epc"] + 1})
    _refused(_me("acme", ahead), "token_revoked")
    huge = _well_signed(acme, {**claims, "epc": 2**62})
    _refused(_me("acme", huge), "token_revoked")
    # and after the next revocation neither the genuine nor the huge one works
    with tenant_context(acme):
        revocation.bump(get_user_model().objects.get(email="agent@acme.test").pk)
    connection.set_schema_to_public()
    _refused(_me("acme", huge), "token_revoked")
    _refused(_me("acme", pair["access"]), "token_revoked")


def test_it_refuses_a_well_signed_refresh_token_whose_epoch_is_ahead(acme, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    claims = _claims(acme, pair["refresh"], tokens.TenantRefreshToken)
    ahead = _well_signed(acme, {**claims, "epc": claims["epc"] + 10**12})
    _refused(_post("acme", REFRESH, ahead), "token_revoked")


def test_it_refuses_a_well_signed_token_whose_mfa_at_is_after_its_iat(acme, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    claims = _claims(acme, pair["access"])
    later = _well_signed(acme, {**claims, "mfa_at": claims["iat"] + 3600})
    _refused(_me("acme", later), "token_invalid")
    for bad in ("1", True, 0, -5, 1.5):
        _refused(_me("acme", _well_signed(acme, {**claims, "mfa_at": bad})), "token_invalid")
    at_issue = _well_signed(acme, {**claims, "mfa_at": claims["iat"]})
    assert _me("acme", at_issue).status_code == 200


def test_it_refuses_a_well_signed_token_of_an_unknown_or_foreign_family(acme, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    other = _pair("acme", "agent2@acme.test")
    claims = _claims(acme, pair["access"])
    unknown = _well_signed(acme, {**claims, "fam": "f" * 32})
    _refused(_me("acme", unknown), "token_invalid")
    foreign = _well_signed(acme, {**claims, "fam": _claims(acme, other["access"])["fam"]})
    _refused(_me("acme", foreign), "token_invalid")
    assert _me("acme", pair["access"]).status_code == 200


def test_it_asks_the_database_when_redis_forgot_a_family(acme, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    family_id = _claims(acme, pair["access"])["fam"]
    with tenant_context(acme):
        TokenFamily.objects.filter(pk=family_id).update(revoked_at=timezone.now())
        # Redis lost what it knew (flushed, evicted): only the database is left.
        delete_raw(tokens.family_live_key(family_id))
        delete_raw(tokens.family_revoked_key(family_id))
    connection.set_schema_to_public()
    _refused(_me("acme", pair["access"]), "token_revoked")


def test_it_refuses_an_access_token_as_a_refresh_token(acme, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    _refused(_post("acme", REFRESH, pair["access"]), "token_invalid")
    _refused(_post("acme", REVOKE, pair["access"]), "token_invalid")


def test_it_challenges_requests_without_valid_credentials(acme):
    # No credentials at all: 401 with the Bearer challenge (403 means "signed in, not allowed").
    response = support.tenant_client("acme").get(ME)
    _refused(response, "not_authenticated")
    bad = support.tenant_client("acme").get(ME, HTTP_AUTHORIZATION="Bearer")
    _refused(bad, "token_invalid")


# --- refresh, reuse, expiry, sign-out ------------------------------------------------------------


def test_it_rotates_refresh_tokens_without_extending_the_sign_in(acme):
    device = _device(acme, "agent@acme.test")
    first = _pair("acme", "agent@acme.test", otp=support.totp_now(device))
    response = _post("acme", REFRESH, first["refresh"])
    assert response.status_code == 200
    second = response.json()
    assert second["refresh"] != first["refresh"] and second["access"] != first["access"]
    old = _claims(acme, first["refresh"], tokens.TenantRefreshToken)
    new = _claims(acme, second["refresh"], tokens.TenantRefreshToken)
    assert new["fam"] == old["fam"] and new["exp"] == old["exp"] and new["jti"] != old["jti"]
    access = _claims(acme, second["access"])
    assert access["mfa_at"] == old["mfa_at"]  # the code was given at sign-in, not now
    assert _me("acme", second["access"]).status_code == 200


def test_it_revokes_the_whole_family_when_a_used_refresh_token_comes_back(
    acme, no_mfa, django_capture_on_commit_callbacks
):
    first = _pair("acme", "agent@acme.test")
    other_sign_in = _pair("acme", "agent@acme.test")
    second = _post("acme", REFRESH, first["refresh"]).json()
    assert _me("acme", second["access"]).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        _refused(_post("acme", REFRESH, first["refresh"]), "token_reused")

    _refused(_me("acme", second["access"]), "token_revoked")
    _refused(_me("acme", first["access"]), "token_revoked")
    _refused(_post("acme", REFRESH, second["refresh"]), "token_revoked")
    family = _claims(acme, second["access"])["fam"]
    event = _events(acme, "auth.token.reuse_detected")[-1]
    assert event.target_id == family and event.outcome == "denied"
    assert first["refresh"] not in json.dumps(event.details)
    with tenant_context(acme):
        assert TokenFamily.objects.get(pk=family).revoked_reason == "reuse"
    connection.set_schema_to_public()
    # Another sign-in of the same user is another family: untouched.
    assert _me("acme", other_sign_in["access"]).status_code == 200
    assert _post("acme", REFRESH, other_sign_in["refresh"]).status_code == 200


def test_it_refuses_a_refresh_token_past_the_absolute_expiry(acme, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    refreshed = _post("acme", REFRESH, pair["refresh"]).json()
    family = _claims(acme, refreshed["refresh"], tokens.TenantRefreshToken)["fam"]
    with tenant_context(acme):
        TokenFamily.objects.filter(pk=family).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    connection.set_schema_to_public()
    _refused(_post("acme", REFRESH, refreshed["refresh"]), "token_expired")


@override_settings(
    SIMPLE_JWT={**settings.SIMPLE_JWT, "REFRESH_TOKEN_LIFETIME": timedelta(minutes=3)}
)
def test_it_never_lets_an_access_token_outlive_its_sign_in(acme, no_mfa):
    pair = _pair("acme", "agent@acme.test")
    access = _claims(acme, pair["access"])
    refresh = _claims(acme, pair["refresh"], tokens.TenantRefreshToken)
    family = _family(acme, refresh["fam"])
    assert abs(family.expires_at - family.created_at - timedelta(minutes=3)) < timedelta(seconds=1)
    assert access["exp"] == refresh["exp"] == int(family.expires_at.timestamp())
    assert pair["expires_in"] <= 180


def test_it_signs_out_by_revoking_the_family(acme, no_mfa, django_capture_on_commit_callbacks):
    pair = _pair("acme", "agent@acme.test")
    with django_capture_on_commit_callbacks(execute=True):
        assert _post("acme", REVOKE, pair["refresh"]).status_code == 204
    _refused(_me("acme", pair["access"]), "token_revoked")
    _refused(_post("acme", REFRESH, pair["refresh"]), "token_revoked")
    event = _events(acme, "auth.token.revoked")[-1]
    assert event.actor_name == "agent@acme.test" and event.details == {"reason": "sign_out"}


@pytest.mark.parametrize("change", [{"is_active": False}, {"role": "marketer"}])
def test_it_refuses_tokens_on_the_next_request_after_a_change(
    acme, no_mfa, change, django_capture_on_commit_callbacks
):
    pair = _pair("acme", "agent@acme.test")
    assert _me("acme", pair["access"]).status_code == 200
    with tenant_context(acme), django_capture_on_commit_callbacks(execute=True):
        user = get_user_model().objects.get(email="agent@acme.test")
        for name, value in change.items():
            setattr(user, name, value)
        user.save()
    connection.set_schema_to_public()
    _refused(_me("acme", pair["access"]), "token_revoked")
    _refused(_post("acme", REFRESH, pair["refresh"]), "token_revoked")
    if "role" in change:  # still a user: a new sign-in carries the new epoch
        fresh = _pair("acme", "agent@acme.test")
        assert _me("acme", fresh["access"]).json()["role"] == "marketer"


def test_it_refuses_tokens_after_sign_out_everywhere(acme, no_mfa):

    pair = _pair("acme", "agent@acme.test")
    with tenant_context(acme):
        revocation.bump(get_user_model().objects.get(email="agent@acme.test").pk)
    connection.set_schema_to_public()
    _refused(_me("acme", pair["access"]), "token_revoked")


def test_it_lets_only_one_of_two_racing_refreshes_through(acme):
    """Two requests with one refresh token at once, each on its own connection.

    Committed data (the test transaction is invisible to other connections),
    removed at the end. To make the race certain, a third connection holds the
    table of used tokens so that both requests are in flight, past their first
    reads, before either can record the token as used.
    """

    family_id = "race" + "0" * 28
    outcomes: list[int] = []
    made: dict = {}
    locked, release = threading.Event(), threading.Event()

    def in_tenant(fn):
        def run():
            try:
                connection.set_tenant(acme)
                fn()
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def sign_in():
        user = get_user_model().objects.get(email="agent2@acme.test")
        family = TokenFamily.objects.create(
            id=family_id, user=user, expires_at=timezone.now() + timedelta(hours=1)
        )
        made["pair"] = tokens._pair(
            user_id=user.pk, family=family, epoch=revocation.current(user.pk), mfa_at=None
        )

    def hold_the_used_tokens():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE token_blacklist_outstandingtoken IN EXCLUSIVE MODE")
            locked.set()
            release.wait(20)

    def refresh():
        outcomes.append(_post("acme", REFRESH, made["pair"].refresh).status_code)

    def waiting() -> int:
        with connections["default"].cursor() as cursor:
            # The test's own transaction would keep seeing its first snapshot of the statistics.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0]

    def cleanup():

        OutstandingToken.objects.filter(user__email="agent2@acme.test").delete()
        TokenFamily.objects.filter(pk=family_id).delete()

    in_tenant(sign_in).join()
    try:
        holder = in_tenant(hold_the_used_tokens)
        assert locked.wait(10)
        racers = [in_tenant(refresh), in_tenant(refresh)]
        deadline = time.monotonic() + 10
        while waiting() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert waiting() == 2  # both requests are blocked mid-way
        release.set()
        for thread in [holder, *racers]:
            thread.join(30)
        assert sorted(outcomes) == [200, 401]
        with tenant_context(acme):
            # The loser saw the token already used: reuse, the family is revoked.
            assert TokenFamily.objects.get(pk=family_id).revoked_reason == "reuse"
    finally:
        release.set()
        in_tenant(cleanup).join()
        connection.set_schema_to_public()


def test_it_reads_the_user_row_as_the_orm_does(acme):
    with tenant_context(acme):
        User = get_user_model()
        orm = User.objects.get(email="agent@acme.test")
        fast = tokens.user_by_id(orm.pk)
        names = [f.attname for f in User._meta.concrete_fields]
        assert [getattr(fast, n) for n in names] == [getattr(orm, n) for n in names]
        assert fast._state.adding is False and fast._state.db == orm._state.db
        assert tokens.user_by_id(-1) is None
    connection.set_schema_to_public()


# --- documentation -------------------------------------------------------------------------------


def test_it_documents_the_token_endpoints_and_the_bearer_scheme(acme):
    client = support.signed_in(acme, "owner@acme.test")
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for path in (TOKEN, REFRESH, REVOKE):
        assert path in schema["paths"]
        # No security requirement: these endpoints take no token (there is no global one).
        assert not schema["paths"][path]["post"].get("security")
    assert "security" not in schema
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {"bearerAuth": []} in schema["paths"][ME]["get"]["security"]


def test_the_cached_user_row_saves_a_query_holds_no_password_and_follows_changes(acme, no_mfa):
    """API requests read the user from a Redis snapshot taken at the current epoch."""


    access = _pair("acme", "analyst@acme.test")["access"]
    assert _me("acme", access).status_code == 200  # fills the snapshot
    with tenant_context(acme):
        user = get_user_model().objects.get(email="analyst@acme.test")
        key = cache.make_key(snapshot_key(user.pk))
    connection.set_schema_to_public()
    store = redis_lib.Redis.from_url(dj_settings.REDIS_URL)
    raw = store.get(key)
    assert raw and b"analyst@acme.test" in raw
    assert user.password.encode() not in raw  # never the password hash
    with CaptureQueriesContext(connection) as queries:
        response = _me("acme", access)
    assert response.status_code == 200 and response.json()["role"] == "analyst"
    assert not [q for q in queries.captured_queries if '"accounts_user"' in q["sql"]]
    # Saving the user drops the snapshot; the next request reads the row again.
    with tenant_context(acme):
        user.first_name = "Renamed"
        user.save()
        assert store.get(key) is None
    connection.set_schema_to_public()
    assert _me("acme", access).json()["first_name"] == "Renamed"
    # A stale snapshot (taken at an older epoch) is never used.
    store.set(key, b"[-1, []]")
    assert _me("acme", access).status_code == 200


def test_beat_forgets_families_past_their_end(acme, no_mfa):



    pair = _pair("acme", "analyst@acme.test")
    family_id = _claims(acme, pair["refresh"], tokens.TenantRefreshToken)[tokens.FAMILY_CLAIM]
    with tenant_context(acme):
        TokenFamily.objects.filter(id=family_id).update(
            expires_at=timezone.now() - timedelta(days=2)
        )
        tokens_purge()
        assert not TokenFamily.objects.filter(id=family_id).exists()
