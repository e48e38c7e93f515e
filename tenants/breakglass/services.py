"""Break-glass state changes: request, approve, deny, end, expire (each audited on both trails)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context

from audit.context import SYSTEM, Actor
from parley.base_url import tenant_base_url
from tenants.breakglass.identity import operator_actor, owner_actor
from tenants.breakglass.selectors import owner_emails
from tenants.breakglass.trail import record_both
from tenants.models import PUBLIC_SCHEMA, BreakGlassGrant, Tenant

logger = logging.getLogger(__name__)

MIN_MINUTES, MAX_MINUTES = 15, 240
MIN_REASON = 10


def break_glass_request(
    *, operator, tenant: Tenant, reason: str, minutes: int, emergency: bool = False
) -> BreakGlassGrant:
    """Record a request; an emergency is active at once. Owners are mailed once it commits."""
    reason = " ".join((reason or "").split())
    if len(reason) < MIN_REASON or len(reason) > 500:
        raise ValidationError(
            "Give a reason of %(min)d to 500 characters.",
            code="reason",
            params={"min": MIN_REASON},
        )
    if not MIN_MINUTES <= int(minutes) <= MAX_MINUTES:
        raise ValidationError(
            "The duration must be %(min)d to %(max)d minutes.",
            code="minutes",
            params={"min": MIN_MINUTES, "max": MAX_MINUTES},
        )
    if tenant.is_public or tenant.is_template or not tenant.is_active:
        raise ValidationError(
            "Break-glass access is only for active tenants.", code="tenant_not_active"
        )
    now = timezone.now()
    with transaction.atomic():
        # One open grant per operator and tenant: the row lock on the tenant
        # keeps two concurrent requests from both passing the check.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        open_grant = BreakGlassGrant.objects.filter(operator=operator, tenant=tenant).filter(
            Q(status=BreakGlassGrant.Status.PENDING)
            | Q(status=BreakGlassGrant.Status.ACTIVE, expires_at__gt=now)
        )
        if open_grant.exists():
            raise ValidationError(
                "You already have a pending or active break-glass grant for %(slug)s; "
                "use it or end it first.",
                code="open_grant",
                params={"slug": tenant.slug},
            )
        grant = BreakGlassGrant.objects.create(
            operator=operator,
            tenant=tenant,
            reason=reason,
            minutes=int(minutes),
            emergency=emergency,
            status=BreakGlassGrant.Status.ACTIVE if emergency else BreakGlassGrant.Status.PENDING,
            requested_at=now,
            expires_at=now + timedelta(minutes=int(minutes)) if emergency else None,
        )
        details = {"reason": reason, "minutes": grant.minutes, "emergency": emergency}
        if emergency:
            details["expires_at"] = grant.expires_at.isoformat()
        record_both(
            "break_glass.emergency_declared" if emergency else "break_glass.requested",
            grant=grant,
            tenant=tenant,
            actor=operator_actor(operator),
            details=details,
        )
        recipients = owner_emails(tenant)
        grant_id = grant.pk
        transaction.on_commit(lambda: _notify_owners(grant_id, recipients))
    return grant


def _notify_owners(grant_id: int, recipients: list[str]) -> None:
    """Mail each owner (after commit: the grant exists whatever the mail server does)."""
    with schema_context(PUBLIC_SCHEMA):
        grant = BreakGlassGrant.objects.select_related("operator", "tenant").get(pk=grant_id)
    tenant = grant.tenant
    page = f"{tenant_base_url(tenant)}/settings/break-glass/"
    if grant.emergency:
        subject = f"[{tenant.name}] Emergency break-glass access by a Parley operator"
        what = (
            f"A Parley operator ({grant.operator_name}) declared an emergency and has "
            f"read-only access to {tenant.name} now, until "
            f"{grant.expires_at:%Y-%m-%d %H:%M} UTC ({grant.minutes} minutes).\n\n"
            f"You can end it at once here:\n{page}\n"
        )
    else:
        subject = f"[{tenant.name}] A Parley operator asks for break-glass access"
        what = (
            f"A Parley operator ({grant.operator_name}) asks for read-only access to "
            f"{tenant.name} for {grant.minutes} minutes. Nothing happens until an owner "
            f"approves.\n\nApprove or deny it here:\n{page}\n"
        )
    body = f"{what}\nReason given: {grant.reason}\n\nEvery request made under it is in your audit trail."
    for email in recipients:
        try:
            send_mail(subject=subject, message=body, from_email=None, recipient_list=[email])
        except Exception:
            logger.exception("break-glass notice for grant %s could not be mailed", grant_id)


def _decide(
    grant: BreakGlassGrant,
    *,
    from_statuses: tuple[str, ...],
    action: str,
    actor: Actor,
    details: dict[str, Any] | None = None,
    **fields,
) -> BreakGlassGrant:
    """Conditional UPDATE from ``from_statuses`` plus its events; a concurrent change is a conflict."""
    with transaction.atomic():
        with schema_context(PUBLIC_SCHEMA):
            changed = BreakGlassGrant.objects.filter(pk=grant.pk, status__in=from_statuses).update(
                **fields
            )
        if changed != 1:
            raise ValidationError(
                "This grant changed meanwhile (decided, ended or expired); reload the page.",
                code="conflict",
            )
        for name, value in fields.items():
            setattr(grant, name, value)
        record_both(action, grant=grant, tenant=grant.tenant, actor=actor, details=details)
    return grant


def break_glass_approve(*, grant: BreakGlassGrant, owner) -> BreakGlassGrant:
    """An owner approves: active from now for the requested minutes."""
    now = timezone.now()
    expires_at = now + timedelta(minutes=grant.minutes)
    return _decide(
        grant,
        from_statuses=(BreakGlassGrant.Status.PENDING,),
        action="break_glass.approved",
        actor=owner_actor(owner, grant.tenant),
        details={"decided_by": owner.email, "expires_at": expires_at.isoformat()},
        status=BreakGlassGrant.Status.ACTIVE,
        decided_by=owner.email,
        decided_at=now,
        expires_at=expires_at,
    )


def break_glass_deny(*, grant: BreakGlassGrant, owner) -> BreakGlassGrant:
    return _decide(
        grant,
        from_statuses=(BreakGlassGrant.Status.PENDING,),
        action="break_glass.denied",
        actor=owner_actor(owner, grant.tenant),
        details={"decided_by": owner.email},
        status=BreakGlassGrant.Status.DENIED,
        decided_by=owner.email,
        decided_at=timezone.now(),
    )


def break_glass_end(*, grant: BreakGlassGrant, actor: Actor, ended_by: str) -> BreakGlassGrant:
    """End a pending or active grant now (its operator withdraws it, or an owner ends it).

    ``ended_by`` is how the pages name who ended it (the operator's or the
    owner's e-mail). Sessions under it end on their next request.
    """
    now = timezone.now()
    return _decide(
        grant,
        from_statuses=(BreakGlassGrant.Status.PENDING, BreakGlassGrant.Status.ACTIVE),
        action="break_glass.ended",
        actor=actor,
        details={"was": grant.status, "ended_by": ended_by[:254]},
        status=BreakGlassGrant.Status.ENDED,
        ended_by=ended_by[:254],
        expires_at=min(grant.expires_at, now) if grant.expires_at else now,
    )


def break_glass_expire(*, grant_id: int) -> bool:
    """Mark one active grant past its deadline ``expired`` (once); True when this call did."""
    with transaction.atomic():
        with schema_context(PUBLIC_SCHEMA):
            changed = BreakGlassGrant.objects.filter(
                pk=grant_id, status=BreakGlassGrant.Status.ACTIVE, expires_at__lte=timezone.now()
            ).update(status=BreakGlassGrant.Status.EXPIRED)
            if changed != 1:
                return False
            grant = BreakGlassGrant.objects.select_related("tenant").get(pk=grant_id)
        record_both(
            "break_glass.expired",
            grant=grant,
            tenant=grant.tenant,
            actor=SYSTEM,
            details={"expires_at": grant.expires_at.isoformat()},
            # The deadline ended it, not whoever's request noticed.
            request=None,
        )
    return True


def break_glass_expire_due() -> int:
    """Every active grant past its deadline becomes ``expired``; returns how many."""
    with schema_context(PUBLIC_SCHEMA):
        due = list(
            BreakGlassGrant.objects.filter(
                status=BreakGlassGrant.Status.ACTIVE, expires_at__lte=timezone.now()
            ).values_list("id", flat=True)
        )
    return sum(1 for grant_id in due if break_glass_expire(grant_id=grant_id))
