"""Channel pages: list every kind; create API, Meta and web chat channels; rotate an
API channel's signing secret (shown once, right then). Meta secrets are write-only."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.permissions import permission_required, step_up_required
from accounts.policy import POLICY, Perm, user_has
from connectors import channels, health
from connectors.forms import ChannelForm, MetaChannelForm
from connectors.webchat import services as webchat
from connectors.webchat.forms import WebchatChannelForm
from parley.forms import add_validation_error


def _form(request, data=None) -> ChannelForm:
    return ChannelForm(
        data,
        inboxes=channels.inboxes_unbound(),
        can_create_inbox=user_has(request.user, Perm.INBOXES_MANAGE),
    )


def webchat_form(request, data=None) -> WebchatChannelForm:
    return WebchatChannelForm(
        data,
        inboxes=channels.inboxes_unbound(),
        can_create_inbox=user_has(request.user, Perm.INBOXES_MANAGE),
    )


def meta_form(request, data=None) -> MetaChannelForm:
    return MetaChannelForm(
        data,
        inboxes=channels.inboxes_unbound(),
        can_create_inbox=user_has(request.user, Perm.INBOXES_MANAGE),
        shared=channels.shared_app_enabled(),
    )


def _row(request, channel) -> dict:
    hints = channels.channel_secret_hints(channel)
    routing = channels.ROUTING_SETTINGS.get(channel.kind)
    return {
        "channel": channel,
        "webhook_url": channels.channel_webhook_url(channel, request),
        "meta": channel.kind in channels.META_KINDS,
        "shared": channels.channel_is_shared(channel),
        "routing_id": (channel.settings or {}).get(routing, "") if routing else "",
        "verify_hint": hints.get("verify_token", ""),
        "token_hint": hints.get("access_token", ""),
        "error_text": health.error_text(channel.last_error_code) if channel.last_error_code else "",
        "widget": webchat.widget_snippet(channel, request) if channel.kind == webchat.KIND else "",
    }


def _page(request, *, form=None, revealed=None, status=200, webchat=None, meta=None):
    rows = [_row(request, channel) for channel in channels.channel_list()]
    if revealed is not None:
        revealed = {
            **revealed,
            "webhook_url": request.build_absolute_uri(channels.webhook_path(revealed["channel"])),
        }
    return render(
        request,
        "connectors/channels.html",
        {
            "rows": rows,
            "form": form or _form(request),
            "webchat_form": webchat or webchat_form(request),
            "meta_form": meta or meta_form(request),
            "revealed": revealed,
            "signature_header": channels.SIGNATURE_HEADER,
            "inbox_creators": _inbox_creators,
        },
        status=status,
    )


def _inbox_creators() -> list[str]:
    """Who can create an inbox (named when every inbox has a channel: no dead end)."""
    roles = [role for role, perms in POLICY.items() if Perm.INBOXES_MANAGE in perms]
    people = get_user_model().objects.filter(is_active=True, role__in=roles).order_by("email")
    return [u.get_full_name() or u.email for u in people[:5]]


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@never_cache
def channel_list(request):
    if request.method != "POST":
        return _page(request)
    form = _form(request, request.POST)
    if form.is_valid():
        try:
            channel, secret = channels.channel_create(
                by=request.user,
                name=form.cleaned_data["name"],
                outbound_url=form.cleaned_data["outbound_url"],
                inbox_id=form.cleaned_data["inbox"],
            )
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            messages.success(request, f"Channel {channel.name} created.")
            # Rendered, not redirected: the secret exists in this response only.
            return _page(request, revealed={"channel": channel, "secret": secret, "new": True})
    return _page(request, form=form, status=400)


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
@never_cache
def meta_channel_create(request):
    """A WhatsApp, Messenger or Instagram channel. Its secrets are never shown back."""
    form = meta_form(request, request.POST)
    if form.is_valid():
        data = form.cleaned_data
        kind, shared = data["kind"], data["meta_app"] == "shared"
        given = {"access_token": data["access_token"]}
        if not shared:
            given |= {"app_secret": data["app_secret"], "verify_token": data["verify_token"]}
        try:
            channel, _ = channels.channel_create(
                by=request.user,
                name=data["name"],
                kind=kind,
                inbox_id=data["inbox"],
                settings={
                    channels.ROUTING_SETTINGS[kind]: data["routing_id"],
                    "meta_app": data["meta_app"],
                },
                secrets_given=given,
            )
        except ValidationError as exc:
            add_validation_error(form, exc)
        else:
            messages.success(request, f"Channel {channel.name} created.")
            return redirect("connectors:channels")
    return _page(request, meta=form, status=400)


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
@never_cache
def channel_rotate(request, channel_id: int):
    channel = channels.channel_get(channel_id=channel_id)
    if channel.signing_credential_id is None:
        # Web chat has no signing secret (visitors hold tokens Parley signs).
        messages.error(request, f"{channel.name} has no signing secret to rotate.")
        return redirect("connectors:channels")
    secret = channels.channel_secret_rotate(by=request.user, channel=channel)
    messages.success(
        request, f"Signing secret of {channel.name} replaced; the old one no longer verifies."
    )
    return _page(request, revealed={"channel": channel, "secret": secret, "new": False})


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
def channel_test(request, channel_id: int):
    """One Graph API call with the channel's access token; the health columns show the result."""
    channel = channels.channel_get(channel_id=channel_id)
    if channel.kind not in channels.META_KINDS:
        messages.error(request, f"{channel.name} has no connection to test.")
        return redirect("connectors:channels")
    result = channels.channel_test_connection(by=request.user, channel=channel)
    if result.ok:
        messages.success(request, f"{channel.name}: Meta accepted the access token.")
    else:
        messages.error(
            request, f"{channel.name}: the test failed. {health.error_text(result.code)}"
        )
    return redirect("connectors:channels")


@permission_required(Perm.CONNECTORS_MANAGE)
@step_up_required
@require_POST
def channel_enabled(request, channel_id: int):
    channel = channels.channel_get(channel_id=channel_id)
    enabled = request.POST.get("enabled") == "1"
    channels.channel_set_enabled(by=request.user, channel=channel, enabled=enabled)
    messages.success(
        request,
        f"{channel.name} resumed."
        if enabled
        else f"{channel.name} paused: its webhook refuses events.",
    )
    return redirect("connectors:channels")
