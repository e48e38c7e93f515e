from django import forms

from connectors.models import Credential
from connectors.services import MAX_SECRET

_SECRET = forms.CharField(
    max_length=MAX_SECRET,
    strip=False,
    widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
    help_text="Write-only: it is encrypted and never shown again (only its last 4 characters).",
)


class CredentialForm(forms.Form):
    name = forms.SlugField(max_length=60)
    kind = forms.ChoiceField(choices=Credential.Kind.choices)
    connector = forms.CharField(max_length=40, help_text="e.g. whatsapp, hubspot")
    secret = _SECRET


class ReplaceSecretForm(forms.Form):
    secret = _SECRET


class ChannelForm(forms.Form):
    """A new API channel; ``inbox`` is an inbox without a channel, or "" to create one."""

    name = forms.CharField(max_length=80)
    outbound_url = forms.CharField(
        max_length=500,
        label="Outbound URL",
        help_text="Replies are POSTed here as signed JSON.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/parley/replies"}),
    )
    inbox = forms.TypedChoiceField(
        coerce=int,
        empty_value=None,
        required=False,
        help_text="Bind an inbox that has no channel yet, or create one with the channel's name.",
    )

    def __init__(self, *args, inboxes=(), can_create_inbox: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "New inbox with the channel's name")] if can_create_inbox else []
        self.fields["inbox"].choices = choices + [(i.pk, i.name) for i in inboxes]
        self.fields["inbox"].required = not can_create_inbox


def _write_only(label: str) -> forms.CharField:
    return forms.CharField(
        max_length=MAX_SECRET,
        required=False,
        strip=False,
        label=label,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
        help_text="Write-only: encrypted, never shown again (only its last 4 characters).",
    )


class MetaChannelForm(forms.Form):
    """A new WhatsApp, Messenger or Instagram channel, on the tenant's own Meta app
    (the three secrets) or the platform's shared app (the account id only)."""

    KINDS = (("whatsapp", "WhatsApp"), ("messenger", "Messenger"), ("instagram", "Instagram"))

    name = forms.CharField(max_length=80, label="Name")
    kind = forms.ChoiceField(choices=KINDS, label="Kind")
    meta_app = forms.ChoiceField(
        label="Meta app",
        choices=(("own", "Our own Meta app"), ("shared", "The platform's shared app")),
        initial="own",
    )
    routing_id = forms.CharField(
        max_length=64,
        label="Account id",
        help_text="WhatsApp: the phone-number id; Messenger: the page id; Instagram: the account id.",
    )
    app_secret = _write_only("App secret (own app)")
    verify_token = _write_only("Verify token (own app)")
    access_token = _write_only("Access token")
    inbox = forms.TypedChoiceField(
        coerce=int,
        empty_value=None,
        required=False,
        help_text="Bind an inbox that has no channel yet, or create one with the channel's name.",
    )

    def __init__(
        self, *args, inboxes=(), can_create_inbox: bool = False, shared: bool = False, **kwargs
    ):
        super().__init__(*args, prefix="meta", **kwargs)
        choices = [("", "New inbox with the channel's name")] if can_create_inbox else []
        self.fields["inbox"].choices = choices + [(i.pk, i.name) for i in inboxes]
        self.fields["inbox"].required = not can_create_inbox
        if not shared:
            self.fields["meta_app"].choices = [("own", "Our own Meta app")]
