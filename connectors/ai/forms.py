from django import forms

from connectors.ai import services
from connectors.services import MAX_SECRET


class AiProviderForm(forms.Form):
    """Numbers stay text here: the service parses them (Django's IntegerField reads
    "١٢" as 12, and that is not what anyone typed on purpose)."""

    name = forms.CharField(max_length=80)
    base_url = forms.CharField(
        max_length=services.MAX_BASE_URL,
        label="Base URL",
        help_text="The API's root, e.g. https://api.openai.com/v1 (we POST to …/chat/completions).",
        widget=forms.URLInput(attrs={"placeholder": "https://api.openai.com/v1"}),
    )
    model = forms.CharField(max_length=100, help_text="e.g. gpt-4o-mini")
    api_key = forms.CharField(
        max_length=MAX_SECRET,
        strip=False,
        label="API key",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
        help_text="Write-only: encrypted, never shown again (only its last 4 characters).",
    )
    timeout_seconds = forms.CharField(
        max_length=4,
        label="Timeout (seconds)",
        initial=services.TIMEOUT_DEFAULT,
        help_text=f"{services.TIMEOUT_MIN} to {services.TIMEOUT_MAX}; past it the bot hands over to a person.",
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    max_tokens = forms.CharField(
        max_length=5,
        label="Max tokens per answer",
        initial=services.MAX_TOKENS_DEFAULT,
        help_text=f"{services.MAX_TOKENS_MIN} to {services.MAX_TOKENS_MAX}.",
        widget=forms.TextInput(attrs={"inputmode": "numeric"}),
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["api_key"].required = False
            self.fields["api_key"].label = "New API key"
            self.fields["api_key"].help_text = "Leave empty to keep the stored key."
