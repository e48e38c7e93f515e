"""The MFA gate: after the password, the second factor, and nothing else until then.

A signed-in session that has not verified an OTP may only reach the MFA pages
(enrol or verify), sign out, and static files when the user must use MFA (see
:func:`accounts.mfa.mfa_required`) or has a device anyway. Everything else is
sent to enrolment (no device yet) or verification; API calls on such a
session get 401.
"""

from __future__ import annotations

from urllib.parse import quote

from accounts import mfa
from accounts.permissions import detour

_OPEN_PREFIXES = ("/mfa/enrol/", "/mfa/verify/", "/logout/", "/static/", "/healthz")


class MfaGateMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not user.is_verified()
            and not request.path.startswith(_OPEN_PREFIXES)
        ):
            device = mfa.has_device(user)
            if device or mfa.mfa_required(user):
                return self._detour(request, enrolled=device)
        return self.get_response(request)

    @staticmethod
    def _detour(request, *, enrolled: bool):
        target = "/mfa/verify/" if enrolled else "/mfa/enrol/"
        nxt = request.get_full_path() if request.method == "GET" else "/"
        return detour(
            request,
            f"{target}?next={quote(nxt)}",
            code="mfa_required",
            detail="Finish signing in with your one-time code first.",
            status=401,
        )
