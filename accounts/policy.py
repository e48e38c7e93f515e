"""The one policy table: which role may do what.

Views, the API, templates (what a menu shows), docs/roles.md and the role
matrix tests all read this table. Nothing compares a role name inline: ask
:func:`role_has` / :func:`user_has`.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    AGENT = "agent", "Support agent"
    MARKETER = "marketer", "Marketer"
    ANALYST = "analyst", "Analyst / auditor"
    INTEGRATOR = "integrator", "Integrator"


class Perm(models.TextChoices):
    USERS_VIEW = "users.view", "See the tenant's users and their roles"
    USERS_MANAGE = "users.manage", "Invite, deactivate and change the role of users"
    TENANT_SETTINGS = "tenant.settings", "Change tenant-wide settings and policies"
    INBOX_USE = "inbox.use", "Work conversations in the inboxes one is a member of"
    FLOWS_EDIT = "flows.edit", "Build, test and publish bot flows"
    AUDIT_VIEW = "audit.view", "Read and export the audit trail"
    CONNECTORS_MANAGE = "connectors.manage", "Add, rotate and test connector credentials"
    KEYS_ROTATE = "keys.rotate", "Rotate the workspace's encryption keys"


# Rank orders roles for "cannot grant a role above your own".
ROLE_RANK: dict[str, int] = {
    Role.OWNER: 100,
    Role.ADMIN: 80,
    Role.INTEGRATOR: 40,
    Role.ANALYST: 30,
    Role.MARKETER: 20,
    Role.AGENT: 20,
}

POLICY: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(Perm.values),
    Role.ADMIN: frozenset(
        {
            Perm.USERS_VIEW,
            Perm.USERS_MANAGE,
            Perm.TENANT_SETTINGS,
            Perm.INBOX_USE,
            Perm.AUDIT_VIEW,
            Perm.CONNECTORS_MANAGE,
        }
    ),
    Role.AGENT: frozenset({Perm.INBOX_USE}),
    Role.MARKETER: frozenset({Perm.FLOWS_EDIT}),
    Role.ANALYST: frozenset({Perm.AUDIT_VIEW}),
    Role.INTEGRATOR: frozenset({Perm.CONNECTORS_MANAGE}),
}


def role_has(role: str, perm: str) -> bool:
    return perm in POLICY.get(role, frozenset())


def user_has(user, perm: str) -> bool:
    """True when an active, authenticated tenant user's role grants ``perm``."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return role_has(user.role, perm)


def permissions_of(role: str) -> list[str]:
    return sorted(POLICY.get(role, frozenset()))
