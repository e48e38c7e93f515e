"""Forms of the inbox pages (the services validate again)."""

from __future__ import annotations

from zoneinfo import available_timezones

from django import forms

from conversations.models import Inbox

DAY_LABELS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


class InboxSettingsForm(forms.Form):
    channel = forms.ChoiceField(required=False)
    assignment = forms.ChoiceField(choices=Inbox.Assignment.choices, label="Assignment")
    timezone = forms.ChoiceField(label="Time zone")
    auto_reply = forms.CharField(
        required=False,
        max_length=1000,
        label="Auto-reply outside business hours",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args, channels=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = [("", "No channel")] + [
            (str(c.pk), c.name) for c in channels
        ]
        self.fields["timezone"].choices = [(z, z) for z in sorted(available_timezones())]
        for day, label in DAY_LABELS.items():
            self.fields[f"hours_{day}"] = forms.CharField(
                required=False,
                max_length=100,
                label=label,
                widget=forms.TextInput(attrs={"placeholder": "closed"}),
            )

    def hour_fields(self):
        return [self[f"hours_{day}"] for day in DAY_LABELS]

    def main_fields(self):
        return [self[name] for name in ("channel", "assignment", "timezone", "auto_reply")]
