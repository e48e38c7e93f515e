"""Forms of the knowledge-base pages and the allow-list section (the services validate
again: a form is a convenience, not the gate)."""

from __future__ import annotations

from django import forms

from bots import services
from parley.validation import validate_text


class ArticleForm(forms.Form):
    title = forms.CharField(max_length=200, validators=[validate_text])
    body = forms.CharField(
        max_length=20000,
        validators=[validate_text],
        widget=forms.Textarea(attrs={"rows": 12}),
        help_text="What the bot may answer with. Instructions for the bot are flagged, "
        "and a flagged article is never used.",
    )
    tags = forms.CharField(
        max_length=20 * 42,
        required=False,
        validators=[validate_text],
        help_text="Comma-separated, e.g. shipping, returns. Knowledge-base nodes can be "
        "limited to tags.",
    )
    published = forms.BooleanField(
        required=False, initial=True, help_text="Only published articles are used."
    )

    def clean_tags(self) -> list[str]:
        raw = self.cleaned_data.get("tags") or ""
        tags = [t.strip().lower() for t in raw.split(",") if t.strip()]
        if len(tags) > services.MAX_TAGS:
            raise forms.ValidationError(f"At most {services.MAX_TAGS} tags.")
        for tag in tags:
            if len(tag) > 40 or not services.TAG_RE.match(tag):
                raise forms.ValidationError(
                    "A tag has up to 40 letters, digits, spaces, '.', '-' or '_'."
                )
        return list(dict.fromkeys(tags))


class SearchForm(forms.Form):
    q = forms.CharField(max_length=200, required=False, validators=[validate_text])


class AllowedHostForm(forms.Form):
    host = forms.CharField(
        max_length=300,
        validators=[validate_text],
        help_text="e.g. api.example.com (a URL is cut to its host; private and loopback "
        "addresses are refused).",
    )
    note = forms.CharField(max_length=200, required=False, validators=[validate_text])
