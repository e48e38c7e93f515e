"""The inbox's "send a template instead" action on a reply refused outside the
customer's 24-hour window (WhatsApp 131047).

A connectors view because the template is the channel's setting
(``reengagement_template`` / ``reengagement_language``) and ``conversations``
never imports ``connectors``; it answers the inbox's htmx form with the queued
template message (``conversations/_messages.html``), like the reply form does.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.html import escape
from django.views.decorators.http import require_POST

from accounts.permissions import permission_required
from accounts.policy import Perm
from connectors.adapters import registry
from connectors.models import Channel
from conversations import access
from conversations.models import Message
from conversations.services import body_of, template_send


def _error(message: str, status: int = 400) -> HttpResponse:
    response = HttpResponse(
        f'<p class="field-error" role="alert">{escape(message)}</p>', status=status
    )
    response["HX-Retarget"] = "#thread-errors"
    response["HX-Reswap"] = "innerHTML"
    return response


@require_POST
@permission_required(Perm.INBOX_USE)
def message_template_send(request, message_id: int):
    """Queue the channel's re-engagement template in the conversation of ``message_id``,
    a reply that failed because only a template may go now."""
    failed = Message.objects.select_related("conversation__inbox").filter(pk=message_id).first()
    if failed is None:
        raise Http404
    # Visibility first: someone who cannot see the conversation learns nothing more.
    try:
        conversation = access.conversation_get_for_user(request.user, failed.conversation_id)
    except (PermissionDenied, Http404):
        raise Http404 from None
    if not failed.awaits_template:
        return _error("This message does not need a template.", status=409)
    channel = Channel.objects.filter(pk=conversation.inbox.channel_id).first()
    if channel is None or channel.kind not in registry.kinds():
        return _error("This conversation has no channel that sends templates.", status=409)
    settings = channel.settings or {}
    name = settings.get("reengagement_template", "")
    language = settings.get("reengagement_language", "")
    if not registry.get(channel.kind).TEMPLATES or not name or not language:
        return _error(
            "No re-engagement template is configured on this channel: ask an integrator "
            "to set one in the channel's settings.",
            status=409,
        )
    try:
        message = template_send(
            by=request.user, conversation_id=conversation.pk, name=name, language=language
        )
    except ValidationError as exc:
        return _error(" ".join(exc.messages))
    return render(
        request,
        "conversations/_messages.html",
        {"thread_messages": [(message, body_of(message))], "c": conversation},
    )
