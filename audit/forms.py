from __future__ import annotations

from datetime import UTC, datetime, time

from django import forms

from audit.catalogue import ACTIONS
from audit.export import FORMATS
from audit.models import AuditSink, Outcome
from audit.selectors import EventFilter


def _start_of(day) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


class EventFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=200)
    action = forms.ChoiceField(
        required=False, choices=[("", "any action")] + [(a, a) for a in sorted(ACTIONS)]
    )
    outcome = forms.ChoiceField(required=False, choices=[("", "any outcome"), *Outcome.choices])
    since = forms.DateField(
        required=False, label="From (UTC day)", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="Before (UTC day)", widget=forms.DateInput(attrs={"type": "date"})
    )
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("'From' must be before 'Before'.")
        return data

    def to_filter(self) -> EventFilter:
        data = self.cleaned_data
        return EventFilter(
            actor=data.get("actor") or "",
            action=data.get("action") or "",
            outcome=data.get("outcome") or "",
            since=_start_of(data.get("since")),
            until=_start_of(data.get("until")),
        )


class ExportForm(forms.Form):
    """The format, plus the viewer's filters as hidden fields: the export is what is on screen."""

    format = forms.ChoiceField(choices=[(f, f.upper()) for f in FORMATS])
    actor = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)
    action = forms.ChoiceField(
        required=False, choices=[("", "")] + [(a, a) for a in ACTIONS], widget=forms.HiddenInput
    )
    outcome = forms.ChoiceField(
        required=False, choices=[("", ""), *Outcome.choices], widget=forms.HiddenInput
    )
    since = forms.DateField(required=False, widget=forms.HiddenInput)
    until = forms.DateField(required=False, widget=forms.HiddenInput)

    FILTERS = ("actor", "action", "outcome", "since", "until")

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise forms.ValidationError("'since' must be before 'until'.")
        return data

    def to_filter(self) -> EventFilter:
        data = self.cleaned_data
        return EventFilter(
            actor=data.get("actor") or "",
            action=data.get("action") or "",
            outcome=data.get("outcome") or "",
            since=_start_of(data.get("since")),
            until=_start_of(data.get("until")),
        )


class SinkForm(forms.ModelForm):
    url = forms.URLField(
        required=False, assume_scheme="https", max_length=200, label="HTTPS URL"
    )

    # Which kind each field belongs to: the page shows only the chosen kind's.
    KIND_FIELDS = {
        "host": AuditSink.Kind.SYSLOG,
        "port": AuditSink.Kind.SYSLOG,
        "use_tls": AuditSink.Kind.SYSLOG,
        "url": AuditSink.Kind.HTTPS,
    }

    class Meta:
        model = AuditSink
        fields = ["name", "kind", "host", "port", "use_tls", "url", "ca_pem", "enabled"]
        labels = {
            "name": "Name",
            "kind": "Kind",
            "host": "Syslog host",
            "port": "Syslog TCP port",
            "use_tls": "Use TLS (recommended)",
            "ca_pem": "Private CA certificate (PEM, optional)",
            "enabled": "Forward events now",
        }
        widgets = {
            "ca_pem": forms.Textarea(
                attrs={"rows": 3, "placeholder": "only if the sink's certificate is not publicly trusted"}
            )
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, kind in self.KIND_FIELDS.items():
            self.fields[name].widget.attrs["data-sink-kind"] = kind

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == AuditSink.Kind.SYSLOG:
            if not data.get("host"):
                self.add_error("host", "A syslog sink needs a host.")
            port = data.get("port")
            if not port or not 1 <= port <= 65535:
                self.add_error("port", "A syslog sink needs a TCP port between 1 and 65535.")
            data["url"] = ""
        elif kind == AuditSink.Kind.HTTPS:
            url = data.get("url") or ""
            if not url.startswith("https://"):
                self.add_error("url", "A JSON sink needs an https:// URL.")
            data["host"], data["port"] = "", None
        pem = (data.get("ca_pem") or "").strip()
        if pem:
            from cryptography import x509

            try:
                x509.load_pem_x509_certificates(pem.encode())
            except ValueError:
                self.add_error("ca_pem", "This is not a PEM certificate.")
        return data
