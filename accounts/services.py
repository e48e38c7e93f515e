"""Changes to the tenant's users and their access, with the rules that guard them.

Every function takes the acting user (``by``); the caller has already checked
sign-in, the policy table and step-up where the view needs them, and these
functions check the rules that depend on the people involved:

* nobody grants a role ranked above their own, or changes someone ranked above them,
  where "their own" is the standing role: a just-in-time grant lets its holder
  use the access, never pass it on or turn it into standing access;
* nobody changes their own role;
* the last active owner can be neither demoted nor deactivated;
* just-in-time grants are approved by someone who could grant that access
  outright, last at most ``PARLEY_JIT_MAX_HOURS`` and end by themselves.

Audit events for user fields (role, active, password) are written by the
model signals in ``audit``; the grant events here; a refusal by these rules
is recorded as ``access.denied`` (with the rule and what was asked) before
``PermissionDenied`` is raised.
"""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from accounts import revocation
from accounts.models import AccessGrant, SecurityPolicy
from accounts.policy import Perm, Role, effective_roles, rank, user_has
from audit.context import current_request
from audit.models import Outcome
from audit.services import record

User = get_user_model()


def _forget_roles(user) -> None:
    user.__dict__.pop("_parley_roles", None)


def _deny(by, *, rule: str, message: str, target=None, role: str = "") -> NoReturn:
    """Record the refusal (its own transaction: nothing else happens), then refuse."""
    request = current_request()
    details = {
        "rule": rule,
        "standing_role": by.role,
        "elevated_roles": sorted(effective_roles(by) - {by.role}),
    }
    if target is not None:
        details["user"] = target.get_username()
    if role:
        details["role"] = role
    if request is not None:
        details.update(method=request.method, path=request.path[:300])
    with transaction.atomic():
        record(
            "access.denied",
            outcome=Outcome.DENIED,
            target_type="user" if target is not None else "",
            target_id=target.pk if target is not None else "",
            details=details,
        )
    if request is not None:
        request._audit_denial_recorded = True  # the middleware adds no second, vaguer one
    raise PermissionDenied(message)


def _check_rank(by, *, role: str | None = None, target=None) -> None:
    # The standing role only: rank from a just-in-time grant would let its
    # holder hand the grant's role out (to themselves, or an accomplice) for good.
    by_rank = rank(by.role)
    if role is not None and rank(role) > by_rank:
        _deny(
            by,
            rule="role_above_own",
            message="You cannot grant a role above your own.",
            target=target,
            role=role,
        )
    if target is not None and rank(target.role) > by_rank:
        _deny(
            by,
            rule="user_above_own",
            message="You cannot change a user whose role is above your own.",
            target=target,
            role=role or "",
        )


def _other_active_owners(user) -> bool:
    return User.objects.filter(role=Role.OWNER, is_active=True).exclude(pk=user.pk).exists()


def _lock_owners() -> None:
    """Serialise owner-count checks (two admins demoting the last two owners at once)."""
    list(User.objects.select_for_update().filter(role=Role.OWNER).values_list("pk", flat=True))


# --- users -------------------------------------------------------------------------------------


def user_invite(*, by, email: str, role: str, name: str = "", request=None):
    """Create a user who sets their password through a one-time link sent by e-mail."""
    if not user_has(by, Perm.USERS_MANAGE):
        raise PermissionDenied
    email = (email or "").strip().lower()
    if role not in Role.values:
        raise ValidationError({"role": "Unknown role."})
    _check_rank(by, role=role)
    if (
        User.objects.filter(email__iexact=email).exists()
        or User.objects.filter(username__iexact=email).exists()
    ):
        raise ValidationError({"email": "A user with this e-mail already exists."})
    first, _, last = " ".join((name or "").split()).partition(" ")
    with transaction.atomic():
        user = User(username=email, email=email, role=role, first_name=first, last_name=last)
        user.full_clean(exclude=["password"])
        user.set_unusable_password()
        user.save()
    _send_invitation(user)
    return user


def _send_invitation(user) -> None:
    from tenants.services import invite_url_for

    tenant = connection.tenant
    link = invite_url_for(tenant, user)
    email = user.email
    transaction.on_commit(
        lambda: send_mail(
            f"You are invited to {tenant.name} on Parley",
            f"Set your password within {settings.PASSWORD_RESET_TIMEOUT // 3600} hours:\n\n{link}\n\n"
            "You will then set up two-factor authentication.",
            None,
            [email],
        )
    )


def invitation_pending(user) -> bool:
    """Invited, and the link not used yet: no password chosen, never signed in."""
    return user.is_active and user.last_login is None and not user.has_usable_password()


def _pending_for_update(by, user):
    if not user_has(by, Perm.USERS_MANAGE):
        raise PermissionDenied
    _check_rank(by, target=user)
    user = User.objects.select_for_update().get(pk=user.pk)
    if not invitation_pending(user):
        raise ValidationError(f"{user.email} has already accepted the invitation.")
    return user


def user_invite_resend(*, by, user, request=None):
    """A new one-time link for a pending invitation (the old link stays valid until it expires)."""
    with transaction.atomic():
        user = _pending_for_update(by, user)
        record("user.invite_resent", target_type="user", target_id=user.pk, request=request)
        _send_invitation(user)
    return user


def user_invite_cancel(*, by, user, request=None) -> None:
    """Withdraw a pending invitation: the user is removed before ever signing in."""
    with transaction.atomic():
        user = _pending_for_update(by, user)
        record(
            "user.invite_cancelled",
            target_type="user",
            target_id=user.pk,
            details={"username": user.username, "role": user.role},
            request=request,
        )
        user.delete()


def user_set_role(*, by, user, role: str):
    if not user_has(by, Perm.USERS_MANAGE):
        raise PermissionDenied
    if role not in Role.values:
        raise ValidationError({"role": "Unknown role."})
    if user.pk == by.pk:
        # Not even down: someone else (who may) changes it, so no elevation can
        # ever be written into one's own standing role.
        _deny(
            by, rule="own_role", message="You cannot change your own role.", target=user, role=role
        )
    _check_rank(by, role=role, target=user)
    with transaction.atomic():
        _lock_owners()
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.role == role:
            return user
        if user.role == Role.OWNER and user.is_active and not _other_active_owners(user):
            raise ValidationError(
                {"role": "This is the last owner: make someone else owner first."}
            )
        user.role = role
        user.save(update_fields=["role"])  # audited and sessions ended by the model signals
    _forget_roles(user)
    return user


def user_set_active(*, by, user, active: bool):
    if not user_has(by, Perm.USERS_MANAGE):
        raise PermissionDenied
    _check_rank(by, target=user)
    if not active and user.pk == by.pk:
        raise ValidationError({"is_active": "You cannot deactivate yourself."})
    with transaction.atomic():
        _lock_owners()
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.is_active == active:
            return user
        if not active and user.role == Role.OWNER and not _other_active_owners(user):
            raise ValidationError(
                {"is_active": "This is the last owner: it cannot be deactivated."}
            )
        user.is_active = active
        user.save(update_fields=["is_active"])
    if not active:
        revocation.bump(user.pk)  # at once, not only after commit: fail closed
    return user


def user_mfa_reset(*, by, user, request=None) -> None:
    from accounts import mfa

    if not user_has(by, Perm.USERS_MANAGE):
        raise PermissionDenied
    _check_rank(by, target=user)
    mfa.devices_reset(user, by=by, request=request)


def user_unlock(*, by, user) -> None:
    """Lift a sign-in lock on the account before it ends by itself."""
    from accounts import lockout

    if not user_has(by, Perm.USERS_MANAGE):
        raise PermissionDenied
    _check_rank(by, target=user)
    lockout.clear(username=user.get_username())
    record(
        "auth.lock_lifted",
        target_type="user",
        target_id=user.pk,
        details={"user": user.get_username()},
    )


# --- MFA policy --------------------------------------------------------------------------------


def security_policy_set(*, by, mfa_roles: list[str]) -> tuple[SecurityPolicy, bool]:
    """Set the roles that must use MFA; returns the policy and whether it changed."""
    if not user_has(by, Perm.SECURITY_POLICY):
        raise PermissionDenied
    unknown = set(mfa_roles) - set(Role.values)
    if unknown:
        raise ValidationError({"mfa_roles": "Unknown role."})
    with transaction.atomic():
        policy, _ = SecurityPolicy.objects.select_for_update().get_or_create(pk=1)
        before = sorted(policy.mfa_roles)
        after = sorted(set(mfa_roles) | {Role.OWNER, Role.ADMIN})
        if after == before:
            # Saving the same policy again changes nothing, so the trail says nothing.
            return policy, False
        policy.mfa_roles = after
        policy.save()
        record(
            "security.policy_changed",
            target_type="security_policy",
            target_id=1,
            details={"mfa_roles_before": before, "mfa_roles": policy.mfa_roles},
        )
    return policy, True


# --- just-in-time grants -------------------------------------------------------------------------


def grant_request(*, by, kind: str, reason: str, hours: int, role: str = "", inbox_id=None):
    reason = (reason or "").strip()
    errors = {}
    if len(reason) < 10:
        errors["reason"] = "Say why you need it (at least 10 characters)."
    if not isinstance(hours, int) or not 1 <= hours <= settings.PARLEY_JIT_MAX_HOURS:
        errors["hours"] = f"Between 1 and {settings.PARLEY_JIT_MAX_HOURS} hours."
    if kind == AccessGrant.Kind.ROLE:
        if role not in Role.values:
            errors["role"] = "Unknown role."
        elif role in effective_roles(by):
            errors["role"] = "You already have this role."
        inbox_id = None
    elif kind == AccessGrant.Kind.INBOX:
        problem = grant_inbox_refusal(user=by, inbox_id=inbox_id)
        if problem:
            errors["inbox"] = problem
        role = ""
    else:
        errors["kind"] = "Ask for a role or an inbox."
    if errors:
        raise ValidationError(errors)
    if AccessGrant.objects.filter(
        user=by, kind=kind, role=role, inbox_id=inbox_id, status=AccessGrant.Status.PENDING
    ).exists():
        raise ValidationError({"kind": "You already asked for this; wait for an answer."})
    with transaction.atomic():
        grant = AccessGrant.objects.create(
            user=by, kind=kind, role=role, inbox_id=inbox_id, reason=reason, hours=hours
        )
        record(
            "grant.requested", target_type="access_grant", target_id=grant.pk, details=_facts(grant)
        )
    return grant


def grant_inbox_refusal(*, user, inbox_id) -> str:
    """Why ``user`` may not ask for ``inbox_id`` ("" when they may).

    Least privilege: an inbox grant adds membership of one inbox, not the
    permission to work conversations (``inbox.use``). A role without that
    permission (marketer, analyst, integrator) would hold a grant that opens
    nothing, so it is refused with the reason instead of given silently.
    """
    if not user_has(user, Perm.INBOX_USE):
        return (
            f"Your role ({role_label(user.role)}) does not work conversations, so an inbox "
            f"would open nothing for you. Ask for the {role_label(Role.AGENT)} role instead."
        )
    if not isinstance(inbox_id, int) or isinstance(inbox_id, bool) or not 0 < inbox_id < 2**63:
        return "Unknown inbox."
    if inbox_id in dict(grant_inbox_choices(user=user)):
        return ""
    if _inbox_ids_visible(user, [inbox_id]):
        return "You can already work in this inbox."
    return "Unknown inbox."


def grant_inbox_note(*, user) -> str:
    """Why the access form offers ``user`` no inbox ("" when it offers some)."""
    if not user_has(user, Perm.INBOX_USE):
        return grant_inbox_refusal(user=user, inbox_id=None)
    if not grant_inbox_choices(user=user):
        return "You already work in every inbox."
    return ""


def grant_inbox_choices(*, user) -> list[tuple[int, str]]:
    """Inboxes ``user`` could be granted: none without ``inbox.use``; never one they already work."""
    # conversations sits above accounts: read its models only here, at call time.
    from conversations.models import Inbox

    if not user_has(user, Perm.INBOX_USE):
        return []
    rows = list(Inbox.objects.order_by("name").values_list("id", "name"))
    visible = _inbox_ids_visible(user, [pk for pk, _ in rows])
    return [(pk, name) for pk, name in rows if pk not in visible]


def _inbox_ids_visible(user, inbox_ids: list[int]) -> set[int]:
    from conversations.access import inbox_list_for_user

    return set(inbox_list_for_user(user).filter(pk__in=inbox_ids).values_list("pk", flat=True))


def grant_inbox_names_attach(grants) -> None:
    """Set ``inbox_name`` on each inbox grant (pages name inboxes, never show ids)."""
    from conversations.models import Inbox

    ids = {g.inbox_id for g in grants if g.inbox_id}
    names = dict(Inbox.objects.filter(pk__in=ids).values_list("id", "name")) if ids else {}
    for grant in grants:
        grant.inbox_name = names.get(grant.inbox_id) or (
            f"a deleted inbox (#{grant.inbox_id})" if grant.inbox_id else ""
        )


def role_label(role: str) -> str:
    """The role's name for people ("Support agent"), never the internal value ("agent")."""
    return dict(Role.choices).get(role, role)


def _facts(grant) -> dict:
    return {
        "user": grant.user.get_username(),
        "kind": grant.kind,
        "role": grant.role,
        "inbox_id": grant.inbox_id,
        "hours": grant.hours,
        "reason": grant.reason,
    }


def grant_decide(*, by, grant: AccessGrant, approve: bool) -> AccessGrant:
    if not user_has(by, Perm.GRANTS_APPROVE):
        raise PermissionDenied
    if grant.user_id == by.pk:
        raise PermissionDenied("Someone else must approve your own request.")
    if grant.kind == AccessGrant.Kind.ROLE:
        _check_rank(by, role=grant.role)
    with transaction.atomic():
        grant = AccessGrant.objects.select_for_update().select_related("user").get(pk=grant.pk)
        if grant.status != AccessGrant.Status.PENDING:
            raise ValidationError("This request was already answered.")
        now = timezone.now()
        grant.decided_by, grant.decided_at = by, now
        if approve:
            grant.status = AccessGrant.Status.APPROVED
            grant.expires_at = now + timedelta(hours=grant.hours)
            if grant.kind == AccessGrant.Kind.ROLE:
                User.objects.filter(pk=grant.user_id).update(
                    elevated_until=_elevated_until_after(grant)
                )
        else:
            grant.status = AccessGrant.Status.DENIED
        grant.save()
        record(
            "grant.approved" if approve else "grant.denied",
            target_type="access_grant",
            target_id=grant.pk,
            details={
                **_facts(grant),
                "expires_at": grant.expires_at and grant.expires_at.isoformat(),
            },
        )
    return grant


def _elevated_until_after(grant):
    """``elevated_until`` after approving ``grant``: the latest end of the user's live role grants."""
    latest = (
        AccessGrant.objects.filter(
            user_id=grant.user_id,
            kind=AccessGrant.Kind.ROLE,
            status=AccessGrant.Status.APPROVED,
            expires_at__gt=timezone.now(),
        )
        .exclude(pk=grant.pk)
        .aggregate(m=Max("expires_at"))["m"]
    )
    return max(filter(None, [latest, grant.expires_at]))


def grant_revoke(*, by, grant: AccessGrant) -> AccessGrant:
    """End an approved grant early (an approver, or the holder giving it back)."""
    if grant.user_id != by.pk and not user_has(by, Perm.GRANTS_APPROVE):
        raise PermissionDenied
    with transaction.atomic():
        grant = AccessGrant.objects.select_for_update().select_related("user").get(pk=grant.pk)
        if grant.status not in (AccessGrant.Status.APPROVED, AccessGrant.Status.PENDING):
            raise ValidationError("This grant is not live.")
        grant.status = AccessGrant.Status.REVOKED
        grant.save(update_fields=["status"])
        record(
            "grant.revoked", target_type="access_grant", target_id=grant.pk, details=_facts(grant)
        )
    revocation.bump(grant.user_id)  # sessions and tokens re-read what the user may do
    return grant


def grants_expire() -> int:
    """Mark approved grants past their end as expired (beat; the checks never need it)."""
    expired = 0
    due = AccessGrant.objects.filter(
        status=AccessGrant.Status.APPROVED, expires_at__lte=timezone.now()
    ).select_related("user")
    for grant in due[:1000]:
        with transaction.atomic():
            updated = AccessGrant.objects.filter(
                pk=grant.pk, status=AccessGrant.Status.APPROVED
            ).update(status=AccessGrant.Status.EXPIRED)
            if updated:
                record(
                    "grant.expired",
                    target_type="access_grant",
                    target_id=grant.pk,
                    details=_facts(grant),
                )
                expired += 1
    return expired
