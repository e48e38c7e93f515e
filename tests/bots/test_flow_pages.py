"""The flow editor's pages: who may open them, what they show and what they never show."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django_tenants.utils import tenant_context

from bots import selectors, services
from connectors import services as connector_services
from connectors.models import Channel
from conversations import access
from conversations import services as conversation_services
from tests import support

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def flow(acme):
    with tenant_context(acme):
        owner = User.objects.get(email="owner@acme.test")
        access.inbox_create(by=owner, name="Support desk")
        return services.flow_create(by=owner, name="Greeting", trigger="new_conversation")


@pytest.mark.parametrize("role", ["marketer", "owner", "admin"])
def test_flow_editors_open_the_list_and_the_editor(acme, flow, role):
    c = support.signed_in(acme, f"{role}@acme.test")
    listing = c.get("/flows/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert 'data-api="/api/v1/flows/"' in html
    assert 'href="/flows/"' in html and ">Flows</a>" in html  # in the menu
    editor = c.get(f"/flows/{flow.pk}/")
    assert editor.status_code == 200
    html = editor.content.decode()
    assert "vendor/drawflow/drawflow.min.js" in html and "bots/flow_editor.js" in html
    assert f'data-api="/api/v1/flows/{flow.pk}/"' in html
    for node_type in (
        "start",
        "send",
        "ask",
        "condition",
        "set",
        "intent",
        "kb_answer",
        "ai_answer",
        "http",
        "handoff",
        "end",
    ):
        assert f'data-type="{node_type}"' in html
    assert "Support desk" in html  # inbox names for the handoff node and the trigger
    # The strict CSP: no inline script or style in what the server sends.
    assert "<style" not in html and " style=" not in html
    assert "<script>" not in html and "<script " not in html.replace('<script src="', "")


@pytest.mark.parametrize("role", ["agent", "analyst", "integrator"])
def test_other_roles_get_403_and_no_menu_entry(acme, flow, role):
    c = support.signed_in(acme, f"{role}@acme.test")
    assert c.get("/flows/").status_code == 403
    assert c.get(f"/flows/{flow.pk}/").status_code == 403
    assert 'href="/flows/"' not in c.get("/").content.decode()


def test_anonymous_goes_to_the_sign_in_page(acme, flow):
    c = support.tenant_client("acme")
    for path in ("/flows/", f"/flows/{flow.pk}/"):
        response = c.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("flow_id", ["999999", "0", "99999999999999999999999"])
def test_a_missing_flow_is_404(acme, flow, flow_id):
    c = support.signed_in(acme, "marketer@acme.test")
    assert c.get(f"/flows/{flow_id}/").status_code == 404


def test_the_marketer_sees_no_conversation_or_credential(acme, flow):
    with tenant_context(acme):
        box = access.inbox_list_for_user(User.objects.get(email="owner@acme.test")).get(
            name="Support desk"
        )
        box.channel = Channel.objects.create(
            name="pages",
            public_id="pub-flow-pages",
            signing_credential=connector_services.credential_set(
                name="pages-secret", kind="webhook_secret", connector="api-channel", secret="s" * 32
            ),
        )
        box.save()
        conversation_services.message_receive(
            inbox=box,
            contact_external_id="pages-1",
            contact_name="Secret Sam",
            body="my card is 4111 1111 1111 1111",
            external_id="pages-m-1",
        )
    c = support.signed_in(acme, "marketer@acme.test")
    for path in ("/flows/", f"/flows/{flow.pk}/"):
        html = c.get(path).content.decode()
        assert "Secret Sam" not in html and "4111" not in html
    assert c.get("/inbox/").status_code == 403
    assert c.get("/connectors/credentials/").status_code == 403


def test_inbox_choices_are_ids_and_names_for_flow_editors_only(acme, flow):
    with tenant_context(acme):
        marketer = User.objects.get(email="marketer@acme.test")
        choices = selectors.flow_inbox_choices(by=marketer)
        assert [c["name"] for c in choices] == sorted(c["name"] for c in choices)
        assert all(set(c) == {"id", "name"} for c in choices)
        assert "Support desk" in [c["name"] for c in choices]
        with pytest.raises(PermissionDenied):
            selectors.flow_inbox_choices(by=User.objects.get(email="agent@acme.test"))
