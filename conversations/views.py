"""Inbox pages: the inboxes a user may work, and membership for those who manage them."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import permission_required
from accounts.policy import Perm, user_has
from conversations import access
from conversations.forms import InboxSettingsForm
from conversations.models import Inbox
from parley.forms import add_validation_error


@permission_required(Perm.INBOX_USE)
def inboxes(request):
    error, status = None, 200
    if request.method == "POST":
        if not user_has(request.user, Perm.INBOXES_MANAGE):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        try:
            inbox = access.inbox_create(by=request.user, name=request.POST.get("name", ""))
        except ValidationError as exc:
            error, status = " ".join(exc.messages), 400
        else:
            messages.success(request, f"Inbox {inbox.name} created.")
            return redirect("conversations:inbox", inbox_id=inbox.pk)
    from conversations.models import CannedResponse

    return render(
        request,
        "conversations/inboxes.html",
        {
            "inboxes": access.inbox_list_for_user(request.user),
            "manage": user_has(request.user, Perm.INBOXES_MANAGE),
            "error": error,
            "canned": CannedResponse.objects.all()[:200],
        },
        status=status,
    )


@require_POST
@permission_required(Perm.INBOXES_MANAGE)
def canned_create(request):
    from conversations import services

    try:
        canned = services.canned_create(
            by=request.user,
            shortcut=request.POST.get("shortcut", ""),
            title=request.POST.get("title", "")[:120],
            body=request.POST.get("body", ""),
        )
    except ValidationError as exc:
        messages.error(request, "Canned response not saved: " + " ".join(exc.messages))
    else:
        messages.success(request, f"Canned response /{canned.shortcut} saved.")
    return redirect("conversations:inboxes")


@permission_required(Perm.INBOX_USE)
def inbox(request, inbox_id: int):
    box = access.inbox_get_for_user(request.user, inbox_id)
    manage = user_has(request.user, Perm.INBOXES_MANAGE)
    members = access.inbox_members(box)
    candidates = []
    if manage:
        from accounts.policy import POLICY

        roles = [r for r, perms in POLICY.items() if Perm.INBOX_USE in perms]
        candidates = (
            get_user_model()
            .objects.filter(is_active=True, role__in=roles)
            .exclude(pk__in=members.values("pk"))
            .order_by("email")
        )
    return render(
        request,
        "conversations/inbox.html",
        {
            "inbox": box,
            "members": members,
            "candidates": candidates,
            "manage": manage,
            "settings_form": _settings_form(box) if manage else None,
        },
    )


def _settings_form(box, data=None) -> InboxSettingsForm:
    # The channel model is the FK's target: no import of the channel layer here.
    channels = Inbox._meta.get_field("channel").related_model.objects.filter(
        Q(inbox__isnull=True) | Q(pk=box.channel_id or 0)
    )
    initial = {
        "channel": box.channel_id or "",
        "assignment": box.assignment,
        "timezone": box.timezone,
        "auto_reply": box.auto_reply,
        **{
            f"hours_{day}": ", ".join(f"{a}-{b}" for a, b in box.business_hours.get(day, []))
            for day in access.DAYS
        },
    }
    return InboxSettingsForm(data, initial=initial, channels=channels.order_by("name"))


@require_POST
@permission_required(Perm.INBOXES_MANAGE)
def inbox_settings(request, inbox_id: int):
    box = access.inbox_get_for_user(request.user, inbox_id)
    form = _settings_form(box, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            hours = access.parse_business_hours({day: data[f"hours_{day}"] for day in access.DAYS})
        except ValidationError as exc:
            for day, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(f"hours_{day}", error)
            hours = None
        try:
            if hours is None:
                raise ValidationError([])
            access.inbox_settings_set(
                by=request.user,
                inbox=box,
                assignment=data["assignment"],
                timezone_name=data["timezone"],
                business_hours=hours,
                auto_reply=data["auto_reply"],
                channel_id=int(data["channel"]) if data["channel"] else None,
            )
        except ValidationError as exc:
            if hours is not None:
                add_validation_error(form, exc)
        else:
            messages.success(request, f"Settings of {box.name} saved.")
            return redirect("conversations:inbox", inbox_id=box.pk)
    members = access.inbox_members(box)
    return render(
        request,
        "conversations/inbox.html",
        {"inbox": box, "members": members, "candidates": [], "manage": True, "settings_form": form},
        status=400,
    )


@require_POST
@permission_required(Perm.INBOXES_MANAGE)
def inbox_members(request, inbox_id: int):
    box = access.inbox_get_for_user(request.user, inbox_id)
    user = get_user_model().objects.filter(pk=request.POST.get("user") or 0).first()
    if user is None:
        messages.error(request, "Choose a user.")
        return redirect("conversations:inbox", inbox_id=box.pk)
    try:
        if request.POST.get("action") == "remove":
            access.inbox_member_remove(by=request.user, inbox=box, user=user)
            messages.success(request, f"{user.email} left {box.name}.")
        else:
            access.inbox_member_add(by=request.user, inbox=box, user=user)
            messages.success(request, f"{user.email} joined {box.name}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("conversations:inbox", inbox_id=box.pk)
