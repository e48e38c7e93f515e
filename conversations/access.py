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

import re
from zoneinfo import available_timezones

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm, remove_perm

from accounts.policy import Perm, user_has
from audit.services import record
from conversations.models import Inbox

WORK_INBOX = "conversations.work_inbox"
_INBOX_CT = {"content_type__app_label": "conversations", "content_type__model": "inbox"}


def _member_inbox_ids(user) -> QuerySet:
    # Joined, not looked up: django-tenants clears the content-type cache on
    # every schema switch, which made the lookup one more query per request.
    return UserObjectPermission.objects.filter(
        user_id=user.pk, permission__codename="work_inbox", **_INBOX_CT
    ).values_list("object_pk", flat=True)


def _granted_inbox_ids(user) -> QuerySet:
    from accounts.models import AccessGrant

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
    from conversations.models import Conversation

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
    from django.core.exceptions import PermissionDenied

    if not user_has(by, Perm.INBOXES_MANAGE):
        raise PermissionDenied


def inbox_create(*, by, name: str) -> Inbox:
    from django.core.exceptions import ValidationError

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
    from django.core.exceptions import ValidationError

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


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")  # ASCII digits only


def parse_business_hours(text_by_day: dict[str, str]) -> dict[str, list[list[str]]]:
    """``{"mon": "09:00-12:00, 13:00-17:00", ...}`` → the model's JSON.

    An empty day is closed; every day empty means always open (``{}``).
    """
    from django.core.exceptions import ValidationError

    hours: dict[str, list[list[str]]] = {}
    errors = {}
    for day in DAYS:
        text = (text_by_day.get(day) or "").strip()
        if not text:
            continue
        ranges = []
        for part in text.split(","):
            start, _, end = (p.strip() for p in part.partition("-"))
            if not (_HHMM.match(start) and _HHMM.match(end)) or start >= end:
                errors[day] = "Use 24-hour ranges such as 09:00-17:00, separated by commas."
                break
            ranges.append([start, end])
        hours[day] = ranges
    if errors:
        raise ValidationError(errors)
    return hours if any(hours.values()) else {}


def inbox_settings_set(
    *,
    by,
    inbox: Inbox,
    assignment: str,
    timezone_name: str,
    business_hours: dict[str, list[list[str]]],
    auto_reply: str,
    channel_id: int | None,
) -> Inbox:
    """Change how an inbox works: its channel, assignment mode, hours and auto-reply."""
    from django.core.exceptions import ValidationError

    _require_manage(by)
    if assignment not in Inbox.Assignment.values:
        raise ValidationError({"assignment": "Choose manual or round-robin assignment."})
    if timezone_name not in available_timezones():
        raise ValidationError({"timezone": "Choose a time zone from the list."})
    auto_reply = (auto_reply or "").strip()
    if len(auto_reply) > 1000 or "\x00" in auto_reply:
        raise ValidationError({"auto_reply": "The auto-reply is at most 1,000 characters."})
    with transaction.atomic():
        inbox = Inbox.objects.select_for_update().get(pk=inbox.pk)
        if channel_id is not None and channel_id != inbox.channel_id:
            # The channel model is the FK's target: no import of the channel layer here.
            channels = Inbox._meta.get_field("channel").related_model.objects
            if not channels.filter(pk=channel_id).exists() or (
                Inbox.objects.filter(channel_id=channel_id).exclude(pk=inbox.pk).exists()
            ):
                raise ValidationError({"channel": "Choose a channel no other inbox uses."})
        before = {
            "assignment": inbox.assignment,
            "timezone": inbox.timezone,
            "business_hours": inbox.business_hours,
            "auto_reply_set": bool(inbox.auto_reply),
            "channel": inbox.channel_id,
        }
        inbox.assignment = assignment
        inbox.timezone = timezone_name
        inbox.business_hours = business_hours
        inbox.auto_reply = auto_reply
        inbox.channel_id = channel_id
        inbox.save(
            update_fields=["assignment", "timezone", "business_hours", "auto_reply", "channel"]
        )
        after = {
            "assignment": assignment,
            "timezone": timezone_name,
            "business_hours": business_hours,
            "auto_reply_set": bool(auto_reply),
            "channel": channel_id,
        }
        record(
            "inbox.updated",
            target_type="inbox",
            target_id=inbox.pk,
            details={"changed": sorted(k for k in after if after[k] != before[k])},
        )
    return inbox
