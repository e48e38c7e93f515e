"""An invited owner sets a first password with the one-time link, then signs in."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import tenant_context

from accounts import services
from accounts.services import user_activation_url
from tenants.models import Tenant
from tenants.services import tenant_create
from tests import support


def test_it_activates_an_invited_owner_once(owner_db):
    result = tenant_create(
        slug="initech", name="Initech", domain="initech.localhost", owner_email="boss@initech.test"
    )
    link = urlsplit(result.invite_url)
    assert link.netloc == "initech.localhost:8000"
    client = support.tenant_client("acme")
    client.defaults["HTTP_HOST"] = "initech.localhost"

    # The same link at another tenant's host is worthless.
    assert (
        "This link no longer works"
        in client.get(link.path, HTTP_HOST="acme.localhost", follow=True).content.decode()
    )

    form_page = client.get(link.path, follow=True)
    assert "Set your password" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    weak = client.post(set_url, {"new_password1": "short", "new_password2": "short"})
    assert "too short" in weak.content.decode()
    done = client.post(
        set_url,
        {"new_password1": "a-strong-passphrase-42", "new_password2": "a-strong-passphrase-42"},
    )
    assert done.status_code == 302
    with tenant_context(result.tenant):
        assert (
            get_user_model()
            .objects.get(email="boss@initech.test")
            .check_password("a-strong-passphrase-42")
        )
    assert client.login(username="boss@initech.test", password="a-strong-passphrase-42")
    # A new password never skips MFA: the owner must enrol before anything else.
    home = client.get("/", HTTP_HOST="initech.localhost")
    assert home.status_code == 302 and home["Location"].startswith("/mfa/enrol/")
    # Used once: the link no longer works.
    assert (
        "This link no longer works"
        in support.tenant_client("acme")
        .get(link.path, HTTP_HOST="initech.localhost", follow=True)
        .content.decode()
    )


@pytest.mark.django_db
def test_it_rejects_a_forged_link():
    client = support.tenant_client("acme")
    page = client.get("/accounts/activate/MQ/forged-token/", follow=True)
    assert page.status_code == 200
    assert re.search("This link no longer works", page.content.decode())


@pytest.mark.django_db
def test_the_set_password_page_reads_well_for_a_name_ending_in_a_full_stop(acme):
    """ "Acme Inc.." once: the sentence put its own full stop after the tenant's name."""
    Tenant.objects.filter(pk=acme.pk).update(name="Acme Inc.")
    with tenant_context(acme):
        admin = get_user_model().objects.get(email="admin@acme.test")
        user = services.user_invite(by=admin, email="new.hire@acme.test", role="agent")
        acme.name = "Acme Inc."
        link = urlsplit(user_activation_url(tenant=acme, user=user))
    connection.set_schema_to_public()
    page = support.tenant_client("acme").get(link.path, follow=True).content.decode()
    assert "Set your password" in page
    assert "Acme Inc." in page and "Acme Inc.." not in page
