"""The one policy table: which role may do what.

Views, the API, templates (what a menu shows), docs/roles.md and the role
matrix tests all read this table. Nothing compares a role name inline: ask
:func:`role_has` / :func:`user_has`; a service starts with :func:`require`.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils import timezone


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
    INBOXES_MANAGE = "inboxes.manage", "See every inbox, create inboxes and choose their members"
    CONTACTS_PII = "contacts.pii", "See contacts' phone numbers and e-mail addresses in full"
    FLOWS_EDIT = "flows.edit", "Build, test and publish bot flows"
    AUDIT_VIEW = "audit.view", "Read and export the audit trail"
    CONNECTORS_MANAGE = "connectors.manage", "Add, rotate and test connector credentials"
    KEYS_ROTATE = "keys.rotate", "Rotate the workspace's encryption keys"
    SECURITY_POLICY = "security.policy", "Set the workspace's MFA policy"
    GRANTS_APPROVE = "grants.approve", "Approve or deny just-in-time access requests"
    BREAK_GLASS_APPROVE = "break_glass.approve", "Approve a platform operator's break-glass access"


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
            Perm.INBOXES_MANAGE,
            Perm.CONTACTS_PII,
            Perm.FLOWS_EDIT,
            Perm.AUDIT_VIEW,
            Perm.CONNECTORS_MANAGE,
            Perm.GRANTS_APPROVE,
        }
    ),
    Role.AGENT: frozenset({Perm.INBOX_USE}),
    Role.MARKETER: frozenset({Perm.FLOWS_EDIT}),
    Role.ANALYST: frozenset({Perm.AUDIT_VIEW}),
    Role.INTEGRATOR: frozenset({Perm.CONNECTORS_MANAGE}),
}


# A platform operator inside a tenant under an approved break-glass grant:
# read-only, whatever the page (unsafe methods are refused before any view).
BREAK_GLASS_PERMISSIONS: frozenset[str] = frozenset(
    {Perm.USERS_VIEW, Perm.AUDIT_VIEW, Perm.INBOX_USE}
)


def role_has(role: str, perm: str) -> bool:
    return perm in POLICY.get(role, frozenset())


BREAK_GLASS_READ_ONLY = "Break-glass access is read-only."


def is_break_glass(user) -> bool:
    """True for the stand-in identity of an operator under break-glass (tenants.breakglass)."""
    return bool(getattr(user, "is_break_glass", False))


def require(by, perm: str, *, write: bool = True) -> None:
    """The authorisation check at the top of a service: ``PermissionDenied`` unless ``by``
    holds ``perm``; and break-glass is read-only, so a change (``write``, the default) is
    refused to a break-glass identity whatever it holds."""
    if not user_has(by, perm):
        raise PermissionDenied
    if write and is_break_glass(by):
        raise PermissionDenied(BREAK_GLASS_READ_ONLY)


def user_has(user, perm: str) -> bool:
    """True when an active, authenticated tenant user's role grants ``perm``."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if is_break_glass(user):
        return perm in BREAK_GLASS_PERMISSIONS
    return any(role_has(role, perm) for role in effective_roles(user))


def effective_roles(user) -> frozenset[str]:
    """The user's role plus the roles of their live just-in-time grants.

    Grants are read only while ``user.elevated_until`` lies ahead, and once
    per request (memoised on the user object, which lives for one request).
    """
    cached = getattr(user, "_parley_roles", None)
    if cached is not None:
        return cached
    roles = {user.role}
    until = getattr(user, "elevated_until", None)
    if until is not None and until > timezone.now():
        # accounts.models imports this module (Role) at start-up: read it at call time.
        from accounts.models import AccessGrant  # noqa: PLC0415

        roles |= set(
            AccessGrant.objects.filter(
                user_id=user.pk,
                kind=AccessGrant.Kind.ROLE,
                status=AccessGrant.Status.APPROVED,
                expires_at__gt=timezone.now(),
            ).values_list("role", flat=True)
        )
    user._parley_roles = frozenset(roles)
    return user._parley_roles


def rank(role: str) -> int:
    return ROLE_RANK.get(role, 0)


def permissions_of(role: str) -> list[str]:
    return sorted(POLICY.get(role, frozenset()))
