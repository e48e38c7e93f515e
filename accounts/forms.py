from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import lockout
from accounts.policy import Role
from audit.context import Actor, client_ip
from audit.models import Outcome
from audit.services import record


class ThrottledAuthenticationForm(AuthenticationForm):
    """Refuses to even check the password while the account or address is locked."""

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        ip = client_ip(self.request) if self.request is not None else None
        if lockout.locked(username=username, ip=ip):
            record(
                "auth.login.locked",
                outcome=Outcome.DENIED,
                actor=Actor(kind="anonymous", name=username[:150]),
                target_type="user",
                details={"username": username[:150]},
                request=self.request,
            )
            minutes = max(1, settings.PARLEY_LOGIN_LOCK_SECONDS // 60)
            raise ValidationError(
                "Too many failed sign-ins for this account or network. Try again in %(minutes)s minutes, "
                "or ask an administrator to lift the lock.",
                code="locked",
                params={"minutes": minutes},
            )
        try:
            return super().clean()
        except ValidationError:
            lockout.register_failure(username=username, ip=ip)
            raise


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    name = forms.CharField(max_length=150, required=False)
    # The least-privileged role unless the inviter picks another.
    role = forms.ChoiceField(choices=Role.choices, initial=Role.AGENT)


class GrantRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=[("role", "A role"), ("inbox", "An inbox")])
    role = forms.ChoiceField(choices=[("", "—"), *Role.choices], required=False)
    inbox = forms.IntegerField(required=False, min_value=1)
    hours = forms.IntegerField(min_value=1, max_value=settings.PARLEY_JIT_MAX_HOURS, initial=2)
    reason = forms.CharField(
        max_length=500, min_length=10, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(
        self, *args, inbox_choices: list[tuple[int, str]], inbox_note: str = "", **kwargs
    ):
        """``inbox_choices``: the inboxes this user could be granted (``grant_inbox_choices``);
        ``inbox_note``: why there are none, shown under the choice of kind."""
        super().__init__(*args, **kwargs)
        if inbox_choices:
            self.fields["inbox"].widget = forms.Select(choices=[("", "—"), *inbox_choices])
        else:
            # Nothing an inbox grant could open for this user: do not offer one.
            del self.fields["inbox"]
            self.fields["kind"].choices = [("role", "A role")]
            self.fields["kind"].help_text = inbox_note

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "kind": data["kind"],
            "role": data.get("role") or "",
            "inbox_id": data.get("inbox"),
            "hours": data["hours"],
            "reason": data["reason"],
        }
