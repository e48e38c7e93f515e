"""Who acts under break-glass: the read-only stand-in user and the audit actors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import Group, Permission
from django.db.models.manager import EmptyManager

from audit.context import Actor
from tenants.models import Tenant


def operator_actor(operator) -> Actor:
    return Actor(kind="operator", id=str(operator.pk), name=operator.get_username())


def owner_actor(owner, tenant: Tenant) -> Actor:
    """A tenant user as named in the platform's trail too (ids are per tenant)."""
    return Actor(kind="user", id=str(owner.pk), name=f"{owner.get_username()} ({tenant.slug})")


class BreakGlassUser:
    """The tenant-side identity of an operator under a live grant.

    Never saved: no row for an operator ever exists in a tenant schema. The
    policy table gives it :data:`accounts.policy.BREAK_GLASS_PERMISSIONS` only
    (``user_has`` looks at ``is_break_glass``); Django's own permission checks
    all say no.
    """

    is_break_glass = True
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None
    role = ""
    first_name = ""
    last_name = ""
    last_login = None
    otp_device = None
    _groups = EmptyManager(Group)
    _user_permissions = EmptyManager(Permission)

    def __init__(self, *, grant_id: int, operator_id: int, operator_name: str, expires_at):
        self.grant_id = grant_id
        self.operator_id = operator_id
        self.operator_name = operator_name
        self.expires_at = expires_at
        self.username = self.email = f"{operator_name}@console (break-glass)"

    def __str__(self) -> str:
        return self.username

    @property
    def groups(self):
        return self._groups

    @property
    def user_permissions(self):
        return self._user_permissions

    def get_username(self) -> str:
        return self.username

    def get_full_name(self) -> str:
        return self.username

    def get_short_name(self) -> str:
        return self.operator_name

    def get_role_display(self) -> str:
        return "Break-glass, read-only"

    def is_verified(self) -> bool:
        # The hand-off needed a fresh OTP on the console.
        return True

    def get_all_permissions(self, obj=None) -> set[str]:
        return set()

    def get_user_permissions(self, obj=None) -> set[str]:
        return set()

    def get_group_permissions(self, obj=None) -> set[str]:
        return set()

    def has_perm(self, perm, obj=None) -> bool:
        return False

    def has_perms(self, perm_list, obj=None) -> bool:
        return False

    def has_module_perms(self, module) -> bool:
        return False

    def save(self, *args, **kwargs):
        raise TypeError("A break-glass identity is never saved.")

    def delete(self, *args, **kwargs):
        raise TypeError("A break-glass identity is never saved.")


@dataclass(frozen=True)
class BreakGlassSession:
    """What templates need to know about the request's break-glass session (the banner)."""

    grant_id: int
    operator: str
    expires_at: datetime
