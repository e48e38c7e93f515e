"""The home page's reads: what each role needs first, chosen by permission.

Agents: their open conversations and the unassigned ones. Approvers: access
and break-glass requests waiting for them. Owners and admins: the workspace's
security posture (MFA coverage, key age, credentials due). Auditors: recent
audit activity. A handful of queries, none per row.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts.models import AccessGrant, BackupCodeDevice, TOTPDevice
from accounts.policy import Perm, user_has

RECENT = 5
KEY_AGE_WARN_DAYS = 365


@dataclass
class Dashboard:
    mine: list = field(default_factory=list)
    mine_count: int = 0
    unassigned: list = field(default_factory=list)
    unassigned_count: int = 0
    names: dict = field(default_factory=dict)
    access_pending: list = field(default_factory=list)
    break_glass_pending: list = field(default_factory=list)
    posture: dict | None = None
    audit_recent: list = field(default_factory=list)
    show_inbox: bool = False
    show_approvals: bool = False
    show_audit: bool = False


def _conversations(user, board: Dashboard) -> None:
    from conversations.access import conversation_list_for_user
    from conversations.models import Conversation
    from conversations.services import contact_pii

    open_ = conversation_list_for_user(user).filter(status=Conversation.Status.OPEN)
    ordered = open_.select_related("inbox", "contact").order_by("-last_activity_at", "-id")
    mine = ordered.filter(assignee_id=user.pk)
    unassigned = ordered.filter(assignee__isnull=True)
    board.mine_count = mine.count()
    board.unassigned_count = unassigned.count()
    board.mine = list(mine[:RECENT])
    board.unassigned = list(unassigned[:RECENT])
    board.names = {
        c.pk: contact_pii(c.contact).get("name") or f"Contact #{c.contact_id}"
        for c in board.mine + board.unassigned
    }


def _posture() -> dict:
    from connectors.selectors import credentials_due
    from parley.models import WrappedKey

    User = get_user_model()
    active = User.objects.filter(is_active=True)
    total = active.count()
    # Set up = any confirmed device (an authenticator app or backup codes), as
    # the sign-in gate counts it.
    with_mfa = (
        active.filter(
            Q(pk__in=TOTPDevice.objects.filter(confirmed=True).values("user_id"))
            | Q(pk__in=BackupCodeDevice.objects.filter(confirmed=True).values("user_id"))
        ).count()
        if total
        else 0
    )
    key = (
        WrappedKey.objects.filter(
            schema_name=connection.schema_name,
            purpose=WrappedKey.Purpose.DATA,
            state=WrappedKey.State.ACTIVE,
        )
        .order_by("-version")
        .first()
    )
    key_age_days = (timezone.now() - key.created_at).days if key else None
    return {
        "users": total,
        "with_mfa": with_mfa,
        "without_mfa": total - with_mfa,
        "mfa_percent": round(100 * with_mfa / total) if total else 100,
        "key_version": key.version if key else None,
        "key_age_days": key_age_days,
        "key_old": key_age_days is not None and key_age_days >= KEY_AGE_WARN_DAYS,
        "credentials_due": credentials_due().count(),
    }


def dashboard_for(user, *, tenant, break_glass_notices=None) -> Dashboard:
    board = Dashboard()
    if user_has(user, Perm.INBOX_USE):
        board.show_inbox = True
        _conversations(user, board)
    if user_has(user, Perm.GRANTS_APPROVE):
        board.show_approvals = True
        board.access_pending = list(
            AccessGrant.objects.filter(status=AccessGrant.Status.PENDING)
            .exclude(user=user)
            .select_related("user")
            .order_by("-id")[:RECENT]
        )
    if user_has(user, Perm.BREAK_GLASS_APPROVE):
        board.show_approvals = True
        from tenants.breakglass import grant_notices_for_tenant

        board.break_glass_pending = [
            g for g in grant_notices_for_tenant(tenant=tenant) if g.status == "pending"
        ]
    if user_has(user, Perm.USERS_MANAGE) or user_has(user, Perm.KEYS_ROTATE):
        board.posture = _posture()
    if user_has(user, Perm.AUDIT_VIEW):
        from audit.models import AuditEvent

        board.show_audit = True
        since = timezone.now() - _dt.timedelta(days=7)
        board.audit_recent = list(
            AuditEvent.objects.filter(occurred_at__gte=since).order_by("-id")[:8]
        )
    return board
