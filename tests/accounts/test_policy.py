"""The policy table is the single source: docs and pages follow it."""

from __future__ import annotations

import pytest
from django.conf import settings

from accounts.management.commands.policy_table import render_policy_markdown
from accounts.policy import POLICY, Perm, Role, role_has
from tests import support


def test_it_keeps_docs_roles_md_in_step_with_the_table():
    assert (settings.BASE_DIR / "docs" / "roles.md").read_text() == render_policy_markdown()


def test_it_gives_every_role_an_entry_and_owners_everything():
    assert set(POLICY) == set(Role.values)
    assert all(role_has(Role.OWNER, p) for p in Perm.values)


@pytest.mark.django_db
@pytest.mark.parametrize("role", support.ROLES)
def test_it_lets_only_roles_with_users_view_see_the_users_page_and_api(acme, role):
    client = support.signed_in(acme, f"{role}@acme.test")
    allowed = role_has(role, Perm.USERS_VIEW)
    page = client.get("/users/")
    api = client.get("/api/v1/users/")
    assert page.status_code == (200 if allowed else 403)
    assert api.status_code == (200 if allowed else 403)
    if not allowed:
        assert api.json()["code"] == "permission_denied"
    home = client.get("/").content.decode()
    assert ('href="/users/"' in home) is allowed
