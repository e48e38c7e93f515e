from django import forms


class WebchatChannelForm(forms.Form):
    """A new web chat channel; ``inbox`` is an inbox without a channel, or "" to create one."""

    name = forms.CharField(max_length=80, label="Name")
    allowed_origins = forms.CharField(
        max_length=6000,
        label="Allowed sites",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://www.example.com"}),
        help_text="One origin per line (https://host[:port]): only these sites may embed the chat.",
    )
    inbox = forms.TypedChoiceField(
        coerce=int,
        empty_value=None,
        required=False,
        help_text="Bind an inbox that has no channel yet, or create one with the channel's name.",
    )

    def __init__(self, *args, inboxes=(), can_create_inbox: bool = False, **kwargs):
        super().__init__(*args, prefix="webchat", **kwargs)
        choices = [("", "New inbox with the channel's name")] if can_create_inbox else []
        self.fields["inbox"].choices = choices + [(i.pk, i.name) for i in inboxes]
        self.fields["inbox"].required = not can_create_inbox
