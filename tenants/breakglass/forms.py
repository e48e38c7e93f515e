"""The operator's request form on the console."""

from __future__ import annotations

from django import forms

from tenants.breakglass.services import MAX_MINUTES, MIN_MINUTES, MIN_REASON


class BreakGlassRequestForm(forms.Form):
    reason = forms.CharField(
        min_length=MIN_REASON,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why you need to look inside this workspace (the owners read it).",
    )
    minutes = forms.IntegerField(
        min_value=MIN_MINUTES,
        max_value=MAX_MINUTES,
        initial=60,
        label="Duration (minutes)",
        help_text=f"{MIN_MINUTES}–{MAX_MINUTES}; the clock starts when access is granted.",
    )
    emergency = forms.BooleanField(
        required=False,
        label="Emergency: start now and notify the owners",
    )
