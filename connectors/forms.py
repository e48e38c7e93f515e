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
