"""The agent inbox: a conversation list, a thread, and the actions on it.

htmx does routine work without reloading the page: the list and the thread
poll every few seconds (new messages appear within 3 s), replies, notes and
actions swap only the parts they change. Every read goes through the access
helpers (404 for what the user may not see); every change through
``conversations.services`` (policy, object access, audit).
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import escape
from django.views.decorators.http import require_POST

from accounts.permissions import permission_required
from accounts.policy import Perm, user_has
from conversations import access, presence, selectors, services
from conversations.models import CannedResponse, Conversation, Message
from parley import validation

POLL_SECONDS = 2


def _filters(request) -> selectors.ConversationFilter:
    q = request.GET
    scope = q.get("scope", "all")
    status = q.get("status", "open")
    try:
        inbox = int(q.get("inbox") or 0) or None
    except ValueError:
        inbox = None
    return selectors.ConversationFilter(
        scope=scope if scope in selectors.FILTERS else "all",
        status=status if status in (*Conversation.Status.values, "any") else "open",
        inbox=inbox,
        label=(q.get("label") or "").strip().lower()[:40],
    )


def _list_context(request, flt):
    try:
        rows, next_cursor = selectors.conversation_page(
            request.user, flt, cursor=request.GET.get("cursor", "")
        )
    except ValidationError:
        rows, next_cursor = [], None
    names = {
        c.pk: services.contact_pii(c.contact).get("name") or f"Contact #{c.contact_id}"
        for c in rows
    }
    return {
        "rows": rows,
        "names": names,
        "previews": selectors.last_message_previews(rows),
        "now_day": timezone.localdate().strftime("%Y%m%d"),
        "next_cursor": next_cursor,
        "flt": flt,
        # An older page stops the list's refresh (it would jump back to the newest);
        # any other partial (refresh, filter change) keeps or restarts it.
        "paged": bool(request.GET.get("cursor")),
        "partial": bool(request.htmx),
    }


def _mask(value: str) -> str:
    if not value:
        return ""
    return "•••• " + value[-4:] if len(value) > 4 else "••••"


# Delivery states a status webhook can still move on from ("read" and "failed" are final).
_OPEN_DELIVERY = ("queued", "sent", "delivered")


def _pending(messages) -> list[str]:
    """Outgoing messages whose delivery can still change, as ``id.status``.

    The poll sends them back; a message whose status differs from the one the
    page shows is redrawn, so "Sent" moves on to "Delivered" and "Read" live.
    """
    return [f"{m.pk}.{m.delivery}" for m in messages if m.delivery in _OPEN_DELIVERY][-20:]


def _parse_pending(raw: str) -> dict[int, str]:
    """``"19.sent,20.queued"`` → ``{19: "sent", 20: "queued"}``; anything else is dropped."""
    shown: dict[int, str] = {}
    for token in raw.split(",")[:20]:
        raw_pk, _, status = token.partition(".")
        pk = validation.ascii_int(raw_pk)
        if pk is not None and status in _OPEN_DELIVERY:
            shown[pk] = status
    return shown


def _thread_context(request, conversation):
    messages = selectors.thread_messages(conversation)
    pii = services.contact_pii(conversation.contact)
    full = user_has(request.user, Perm.CONTACTS_PII)
    members = access.inbox_members(conversation.inbox)
    return {
        "c": conversation,
        # Not "messages": the layout shows django.contrib.messages under that
        # name, and message bodies must never appear outside their thread.
        "thread_messages": [(m, services.body_of(m)) for m in messages],
        "last_id": messages[-1].pk if messages else 0,
        "pending": _pending(messages),
        "contact": {
            "name": pii.get("name") or f"Contact #{conversation.contact_id}",
            "phone": pii.get("phone") if full else _mask(pii.get("phone", "")),
            "email": pii.get("email") if full else _mask(pii.get("email", "")),
            "full": full,
        },
        "members": members,
        "canned": CannedResponse.objects.all()[:50],
        "read_only": getattr(request.user, "is_break_glass", False),
    }


@permission_required(Perm.INBOX_USE)
def inbox(request):
    presence.touch(request.user)
    flt = _filters(request)
    context = _list_context(request, flt)
    if request.htmx and request.GET.get("part") == "list":
        return render(request, "conversations/_list.html", context)
    selected = None
    if request.GET.get("c"):
        selected = access.conversation_get_for_user(request.user, request.GET["c"])
        services.mark_read(by=request.user, conversation_id=selected.pk, conversation=selected)
        context.update(_thread_context(request, selected))
    context.update(
        {
            "inboxes": access.inbox_list_for_user(request.user),
            "unread": selectors.unread_by_inbox(request.user),
            "statuses": [
                ("open", "Open"),
                ("pending", "Pending"),
                ("snoozed", "Snoozed"),
                ("resolved", "Resolved"),
                ("any", "Any status"),
            ],
            "selected": selected,
            "poll": POLL_SECONDS,
        }
    )
    return render(request, "conversations/inbox_page.html", context)


@permission_required(Perm.INBOX_USE)
def thread(request, conversation_id: int):
    conversation = access.conversation_get_for_user(request.user, conversation_id)
    services.mark_read(by=request.user, conversation_id=conversation.pk, conversation=conversation)
    return render(request, "conversations/_thread.html", _thread_context(request, conversation))


@permission_required(Perm.INBOX_USE)
def thread_new(request, conversation_id: int):
    """Messages after ``after`` (the thread polls this); 204 when there are none."""
    presence.touch(request.user)
    conversation = access.conversation_get_for_user(request.user, conversation_id)
    after = validation.ascii_int(request.GET.get("after", "")) or 0
    messages = selectors.thread_messages(conversation, after=after)
    shown = _parse_pending(request.GET.get("pending", ""))
    changed = []
    if shown:
        changed = [
            m
            for m in Message.objects.filter(
                conversation=conversation, pk__in=list(shown)
            ).select_related("sender_user")
            if m.delivery != shown[m.pk]
        ]
    if not messages and not changed:
        return HttpResponse(status=204)
    if messages:
        services.mark_read(
            by=request.user, conversation_id=conversation.pk, conversation=conversation
        )
    done = {m.pk for m in changed}
    return render(
        request,
        "conversations/_messages.html",
        {
            "thread_messages": [(m, services.body_of(m)) for m in messages],
            "changed": [(m, services.body_of(m)) for m in changed],
            "c": conversation,
            "last_id": messages[-1].pk if messages else after,
            "pending": [
                *(f"{pk}.{status}" for pk, status in shown.items() if pk not in done),
                *_pending(changed),
                *_pending(m for m in messages if m.pk not in shown),
            ][-20:],
            "oob_cursor": True,
        },
    )


def _expand_canned(body: str) -> str:
    body = (body or "").strip()
    if body.startswith("/") and " " not in body:
        canned = CannedResponse.objects.filter(shortcut=body[1:].lower()).first()
        if canned is not None:
            return canned.body
    return body


def _error(message: str, status: int = 400) -> HttpResponse:
    response = HttpResponse(f'<p class="field-error" role="alert">{message}</p>', status=status)
    response["HX-Retarget"] = "#thread-errors"
    response["HX-Reswap"] = "innerHTML"
    return response


@require_POST
@permission_required(Perm.INBOX_USE)
def reply(request, conversation_id: int):
    body = _expand_canned(request.POST.get("body", ""))
    try:
        if request.POST.get("private") == "1":
            message = services.note_add(by=request.user, conversation_id=conversation_id, body=body)
        else:
            message = services.reply_send(
                by=request.user, conversation_id=conversation_id, body=body
            )
    except ValidationError as exc:
        return _error(escape(" ".join(exc.messages)))
    conversation = access.conversation_get_for_user(request.user, conversation_id)
    # The poll keeps its own cursor: it fetches this reply again (the page
    # drops the duplicate) and follows its delivery status from there.
    return render(
        request,
        "conversations/_messages.html",
        {"thread_messages": [(message, services.body_of(message))], "c": conversation},
    )


@require_POST
@permission_required(Perm.INBOX_USE)
def act(request, conversation_id: int):
    """Assign, unassign, resolve, reopen, snooze, label, take over, hand back."""
    action = request.POST.get("action", "")
    by = request.user
    try:
        if action == "assign":
            assignee_id = request.POST.get("assignee") or ""
            assignee = None
            if assignee_id == "me":
                assignee = by
            elif assignee_id:
                assignee = (
                    get_user_model()
                    .objects.filter(pk=validation.ascii_int(assignee_id) or 0)
                    .first()
                )
                if assignee is None:
                    raise ValidationError("Choose someone who works this inbox.")
            services.assign(by=by, conversation_id=conversation_id, assignee=assignee)
        elif action == "resolve":
            services.resolve(by=by, conversation_id=conversation_id)
        elif action == "reopen":
            services.reopen(by=by, conversation_id=conversation_id)
        elif action == "snooze":
            hours = {"1h": 1, "4h": 4, "24h": 24}.get(request.POST.get("for", ""), 0)
            if not hours:
                raise ValidationError("Choose how long to snooze.")
            services.snooze(
                by=by,
                conversation_id=conversation_id,
                until=timezone.now() + dt.timedelta(hours=hours),
            )
        elif action == "labels":
            services.labels_set(
                by=by,
                conversation_id=conversation_id,
                labels=request.POST.get("labels", "").split(","),
            )
        elif action == "takeover":
            services.takeover(by=by, conversation_id=conversation_id)
        elif action == "handback":
            services.handback(by=by, conversation_id=conversation_id)
        else:
            raise ValidationError("Unknown action.")
    except ValidationError as exc:
        return _error(escape(" ".join(exc.messages)))
    conversation = access.conversation_get_for_user(by, conversation_id)
    response = render(request, "conversations/_thread.html", _thread_context(request, conversation))
    response["HX-Trigger"] = "conversation-changed"
    return response
