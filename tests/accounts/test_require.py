"""``require(by, perm, write=True)``: the one authorisation check at the top of a service."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from accounts import services
from accounts.policy import BREAK_GLASS_READ_ONLY, Perm, Role, require
from tenants.breakglass.identity import BreakGlassUser


def _user(role: str, *, active: bool = True):
    # Unsaved: require() reads the role (no JIT grant: elevated_until is None).
    return get_user_model()(username=f"{role}@acme.test", role=role, is_active=active)


def _operator() -> BreakGlassUser:
    return BreakGlassUser(
        grant_id=1, operator_id=1, operator_name="op", expires_at=timezone.now()
    )


def test_it_lets_a_role_holding_the_permission_act():
    require(_user(Role.ADMIN), Perm.USERS_MANAGE)
    require(_user(Role.AGENT), Perm.INBOX_USE)


@pytest.mark.parametrize("by", [None, AnonymousUser(), "inactive", Role.AGENT])
def test_it_refuses_anyone_without_the_permission(by):
    by = _user(Role.OWNER, active=False) if by == "inactive" else by
    by = _user(by) if by == Role.AGENT else by
    with pytest.raises(PermissionDenied):
        require(by, Perm.USERS_MANAGE)


def test_break_glass_reads_what_it_holds_but_changes_nothing():
    operator = _operator()
    require(operator, Perm.INBOX_USE, write=False)
    with pytest.raises(PermissionDenied) as refused:
        require(operator, Perm.INBOX_USE)
    assert str(refused.value) == BREAK_GLASS_READ_ONLY
    with pytest.raises(PermissionDenied):
        require(operator, Perm.USERS_MANAGE, write=False)


def test_a_service_starts_with_it():
    """accounts' services call require() (no copy of the check): an agent cannot invite."""
    with pytest.raises(PermissionDenied):
        services.user_invite(by=_user(Role.AGENT), email="new@acme.test", role=Role.AGENT)
