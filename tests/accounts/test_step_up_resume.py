"""Step-up keeps the action: after the code, the form comes back filled and one
click finishes it; secrets typed into a form are never kept in the session."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_otp.oath import TOTP
from django_tenants.utils import tenant_context

from accounts.models import TOTPDevice
from accounts.permissions import STEP_UP_PENDING
from tests import support

pytestmark = pytest.mark.django_db

USERS = {"HTTP_REFERER": "http://acme.localhost/users/"}


def _code(acme, email: str) -> str:
    with tenant_context(acme):
        device = TOTPDevice.objects.get(user__email=email)
    connection.set_schema_to_public()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():06d}"


def _hidden(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))


def test_an_invitation_completes_with_one_click_after_the_code(acme):
    client = support.signed_in(acme, "owner@acme.test", step_up=False)
    detour = client.post("/users/invite/", {"email": "later@acme.test", "role": "analyst"}, **USERS)
    assert detour.status_code == 302 and "&resume=" in detour["Location"]
    with tenant_context(acme):
        assert not get_user_model().objects.filter(email="later@acme.test").exists()
    connection.set_schema_to_public()

    page = client.post(detour["Location"], {"code": _code(acme, "owner@acme.test")})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'action="/users/invite/"' in html and "Send the invitation" in html
    fields = _hidden(html)
    assert fields["email"] == "later@acme.test" and fields["role"] == "analyst"
    assert STEP_UP_PENDING not in client.session  # one time only

    done = client.post("/users/invite/", fields, **USERS)
    assert done.status_code == 302 and done["Location"] == "/users/"
    with tenant_context(acme):
        assert get_user_model().objects.get(email="later@acme.test").role == "analyst"


def test_a_secret_is_never_kept_and_the_form_returns_to_be_typed_again(acme):
    client = support.signed_in(acme, "integrator@acme.test", step_up=False)
    secret = "sk-live-NEVER-IN-SESSION-5521"
    detour = client.post(
        "/connectors/credentials/",
        {"name": "crm", "kind": "api_key", "connector": "hubspot", "secret": secret},
        HTTP_REFERER="http://acme.localhost/connectors/credentials/",
    )
    assert "&resume=" in detour["Location"]
    with tenant_context(acme):
        from django.contrib.sessions.models import Session

        stored = Session.objects.get(session_key=client.session.session_key).get_decoded()
    connection.set_schema_to_public()
    assert secret not in repr(stored)
    assert "secret" not in dict(stored[STEP_UP_PENDING]["fields"])

    back = client.post(detour["Location"], {"code": _code(acme, "integrator@acme.test")})
    assert back.status_code == 302 and back["Location"] == "/connectors/credentials/"
    page = client.get("/connectors/credentials/").content.decode()
    assert "enter it again" in page and secret not in page


def test_a_resume_id_works_once_and_only_for_its_own_form(acme):
    client = support.signed_in(acme, "owner@acme.test", step_up=False)
    detour = client.post("/users/invite/", {"email": "x1@acme.test", "role": "agent"}, **USERS)
    forged = re.sub(r"resume=[\w-]+", "resume=not-the-id", detour["Location"])
    page = client.post(forged, {"code": _code(acme, "owner@acme.test")})
    assert page.status_code == 302 and page["Location"] == "/users/"  # no form replayed


def test_an_htmx_post_is_not_stashed(acme):
    client = support.signed_in(acme, "owner@acme.test", step_up=False)
    response = client.post(
        "/users/invite/", {"email": "x2@acme.test", "role": "agent"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 204 and "resume=" not in response["HX-Redirect"]
    assert STEP_UP_PENDING not in client.session
