from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import lockout
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
