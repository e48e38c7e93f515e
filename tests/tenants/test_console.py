"""The platform console on the bare domain: operators only."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_exists, tenant_context

from tenants.models import Domain, Tenant
from tests import support


def _operator_client():
    client = support.console_client()
    support.signed_in(None, "operator", client=client)
    return client


@pytest.mark.django_db
def test_it_sends_anonymous_visitors_to_the_console_login():
    response = support.console_client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_it_does_not_let_a_tenant_user_into_the_console():
    client = support.console_client()
    response = client.post("/login/", {"username": "owner@acme.test", "password": support.PASSWORD})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_it_lists_tenants_for_an_operator():
    page = _operator_client().get("/").content.decode()
    assert "acme.localhost" in page and "globex.localhost" in page
    assert "tenant_template" not in page and ">public<" not in page


@pytest.mark.django_db
def test_it_requests_a_tenant_and_enqueues_provisioning(django_capture_on_commit_callbacks):
    client = _operator_client()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/",
            {
                "slug": "initech",
                "name": "Initech",
                "domain": "initech.localhost",
                "owner_email": "boss@initech.test",
            },
        )
    assert response.status_code == 302 and response["Location"] == "/tenants/initech/"
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.status == Tenant.Status.PROVISIONING
    # The provisioning task is enqueued on commit (next to sealing the audit event).
    assert [c.__qualname__ for c in callbacks if "tenant_request" in c.__qualname__] == [
        "tenant_request.<locals>.<lambda>"
    ]
    detail = client.get("/tenants/initech/").content.decode()
    assert "Creating the workspace" in detail and 'hx-trigger="every 1s"' in detail


@pytest.mark.django_db
def test_it_shows_errors_for_bad_console_input_and_creates_nothing():
    client = _operator_client()
    before = Tenant.objects.count()
    response = client.post(
        "/", {"slug": "acme", "name": "X", "domain": "www.localhost", "owner_email": "x@y.test"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "The slug &#x27;acme&#x27; is taken." in page
    assert "The host name &#x27;www&#x27; is reserved." in page
    assert Tenant.objects.count() == before


@pytest.mark.django_db
def test_it_suspends_and_reactivates_from_the_console():
    client = _operator_client()
    client.post("/tenants/globex/suspend/", {"reason": "abuse report"})
    assert Tenant.objects.get(slug="globex").status == Tenant.Status.SUSPENDED
    assert support.tenant_client("globex").get("/login/").status_code == 403
    client.post("/tenants/globex/reactivate/")
    assert Tenant.objects.get(slug="globex").status == Tenant.Status.ACTIVE


@pytest.mark.django_db
def test_it_redraws_the_whole_page_once_provisioning_is_over(django_capture_on_commit_callbacks):
    """The "being created" banner went stale and the break-glass form came only after a reload."""
    client = _operator_client()
    with django_capture_on_commit_callbacks(execute=False):
        client.post(
            "/",
            {
                "slug": "initech",
                "name": "Initech",
                "domain": "initech.localhost",
                "owner_email": "boss@initech.test",
            },
        )
    first = client.get("/tenants/initech/").content.decode()
    assert "its workspace is being created" in first
    assert "Request break-glass access" not in first
    # While it is being created, the status block polls and is swapped alone.
    poll = client.get("/tenants/initech/", HTTP_HX_REQUEST="true")
    assert poll.status_code == 200 and "HX-Refresh" not in poll
    assert 'hx-trigger="every 1s"' in poll.content.decode()
    Tenant.objects.filter(slug="initech").update(status=Tenant.Status.ACTIVE)
    # Then the poll asks for the whole page, which is current everywhere.
    poll = client.get("/tenants/initech/", HTTP_HX_REQUEST="true")
    assert poll["HX-Refresh"] == "true"
    page = client.get("/tenants/initech/").content.decode()
    assert "Tenant initech is ready." in page
    assert "being created" not in page and "Creating the workspace" not in page
    assert "every 1s" not in page
    assert "Request break-glass access" in page


@pytest.mark.django_db
def test_it_gives_every_field_of_the_tenant_page_its_own_id_and_label():
    """Two fields shared id="id_reason" and the offboarding box was missing."""
    page = _operator_client().get("/tenants/acme/").content.decode()
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    fields = re.findall(r'<(?:input|select|textarea)\b[^>]*\bid="([^"]+)"', page)
    assert fields
    for field_id in fields:
        assert f'for="{field_id}"' in page, f"no label for #{field_id}"
    assert 'name="confirm"' in page


@pytest.mark.django_db
def test_it_answers_404_for_the_template_and_public_rows():
    client = _operator_client()
    assert client.get("/tenants/template/").status_code == 404
    assert client.get("/tenants/public/").status_code == 404


@pytest.mark.slow
def test_it_provisions_a_console_request_on_the_owner_worker(
    django_db_blocker, provisioning_worker
):
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        client = _operator_client()
        try:
            client.post(
                "/",
                {
                    "slug": "hooli",
                    "name": "Hooli",
                    "domain": "hooli.localhost",
                    "owner_email": "gavin@hooli.test",
                },
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                tenant = Tenant.objects.get(slug="hooli")
                if tenant.status != Tenant.Status.PROVISIONING:
                    break
                time.sleep(0.2)
            assert tenant.status == Tenant.Status.ACTIVE, provisioning_worker.log.read_text()[
                -2000:
            ]
            assert schema_exists("t_hooli")
            with tenant_context(tenant):
                assert get_user_model().objects.get().email == "gavin@hooli.test"
            connection.set_schema_to_public()
            poll = client.get("/tenants/hooli/", HTTP_HX_REQUEST="true")
            assert poll["HX-Refresh"] == "true"
            assert "Active" in client.get("/tenants/hooli/").content.decode()
        finally:
            connection.set_schema_to_public()
            with support.owner_role():
                with connection.cursor() as cursor:
                    cursor.execute("DROP SCHEMA IF EXISTS t_hooli CASCADE")
                Domain.objects.filter(domain="hooli.localhost").delete()
                Tenant.objects.filter(slug="hooli").delete()
