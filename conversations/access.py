"""Access helpers: every inbox (and later conversation) a user reaches goes through here.

An object the user may not see is answered exactly like one that does not
exist (404), so ids of other inboxes reveal nothing. Visibility:

* owners and admins (``inboxes.manage``) see every inbox;
* agents see the inboxes they are members of (a django-guardian object
  permission, ``conversations.work_inbox``) and those of a live just-in-time
  inbox grant;
* a platform operator under break-glass sees every inbox, read-only;
* everyone else sees none.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm, remove_perm

from accounts.models import AccessGrant
from accounts.policy import Perm, user_has
from audit.services import record
from conversations.models import Conversation, Inbox

WORK_INBOX = "conversations.work_inbox"
_INBOX_CT = {"content_type__app_label": "conversations", "content_type__model": "inbox"}


def _member_inbox_ids(user) -> QuerySet:
    # Joined, not looked up: django-tenants clears the content-type cache on
    # every schema switch, which made the lookup one more query per request.
    return UserObjectPermission.objects.filter(
        user_id=user.pk, permission__codename="work_inbox", **_INBOX_CT
    ).values_list("object_pk", flat=True)


def _granted_inbox_ids(user) -> QuerySet:

    return AccessGrant.objects.filter(
        user_id=user.pk,
        kind=AccessGrant.Kind.INBOX,
        status=AccessGrant.Status.APPROVED,
        expires_at__gt=timezone.now(),
    ).values_list("inbox_id", flat=True)


def _sees_every_inbox(user) -> bool:
    """Owners and admins, and an operator under break-glass (read-only)."""
    return getattr(user, "is_break_glass", False) or user_has(user, Perm.INBOXES_MANAGE)


def inbox_list_for_user(user) -> QuerySet[Inbox]:
    if not user_has(user, Perm.INBOX_USE):
        return Inbox.objects.none()
    if _sees_every_inbox(user):
        return Inbox.objects.all()
    member = [int(pk) for pk in _member_inbox_ids(user)]
    return Inbox.objects.filter(pk__in=[*member, *_granted_inbox_ids(user)])


def inbox_get_for_user(user, inbox_id) -> Inbox:
    try:
        inbox_id = int(inbox_id)
    except (TypeError, ValueError):
        raise Http404 from None
    inbox = inbox_list_for_user(user).filter(pk=inbox_id).first()
    if inbox is None:
        raise Http404
    return inbox


def conversation_list_for_user(user) -> QuerySet:
    """Conversations of the inboxes the user may work (none for other roles)."""

    if not user_has(user, Perm.INBOX_USE):
        return Conversation.objects.none()
    if _sees_every_inbox(user):
        return Conversation.objects.all()
    # A literal list of ids: the planner then knows how many rows each inbox
    # holds (a subquery hid it and sent it down a slow plan; see bench/inbox.py).
    inbox_ids = list(inbox_list_for_user(user).values_list("pk", flat=True))
    return Conversation.objects.filter(inbox_id__in=inbox_ids)


def conversation_get_for_user(user, conversation_id, *, for_update: bool = False):

    try:
        conversation_id = int(conversation_id)
    except (TypeError, ValueError):
        raise Http404 from None
    qs = conversation_list_for_user(user).filter(pk=conversation_id)
    if for_update:
        qs = qs.select_for_update(of=("self",))
    conversation = qs.select_related("inbox", "assignee", "contact").first()
    if conversation is None:
        raise Http404
    return conversation


def inbox_members(inbox: Inbox):
    ids = UserObjectPermission.objects.filter(
        permission__codename="work_inbox", object_pk=str(inbox.pk), **_INBOX_CT
    ).values_list("user_id", flat=True)
    return get_user_model().objects.filter(pk__in=ids).order_by("email")


# --- changes -------------------------------------------------------------------------------------


def _require_manage(by) -> None:

    if not user_has(by, Perm.INBOXES_MANAGE):
        raise PermissionDenied


def inbox_create(*, by, name: str) -> Inbox:

    _require_manage(by)
    name = (name or "").strip()
    if not 1 <= len(name) <= 80:
        raise ValidationError({"name": "Give the inbox a name of 1 to 80 characters."})
    if Inbox.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": "An inbox with this name exists."})
    with transaction.atomic():
        inbox = Inbox.objects.create(name=name)
        record("inbox.created", target_type="inbox", target_id=inbox.pk, details={"name": name})
    return inbox


def inbox_member_add(*, by, inbox: Inbox, user) -> None:

    _require_manage(by)
    if not user.is_active or not user_has(user, Perm.INBOX_USE):
        raise ValidationError(
            {"user": "Only active users whose role works inboxes can be members."}
        )
    with transaction.atomic():
        assign_perm(WORK_INBOX, user, inbox)
        record(
            "inbox.member_added",
            target_type="inbox",
            target_id=inbox.pk,
            details={"user": user.get_username()},
        )


def inbox_member_remove(*, by, inbox: Inbox, user) -> None:
    _require_manage(by)
    with transaction.atomic():
        remove_perm(WORK_INBOX, user, inbox)
        record(
            "inbox.member_removed",
            target_type="inbox",
            target_id=inbox.pk,
            details={"user": user.get_username()},
        )
