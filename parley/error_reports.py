"""Error reports (the DEBUG page, 500 e-mails, the plain-text traceback) that hold no secret.

Django's own filter masks settings whose *name* matches ``API|AUTH|TOKEN|KEY|
SECRET|PASS|SIGNATURE``, and masks frame locals only when ``DEBUG`` is off and
the function is decorated. That let the DEBUG page (the development default)
show ``PARLEY_LOCAL_KEK`` (``KEK`` is not ``KEY``), ``DATABASE_URL`` and
``REDIS_URL`` with their passwords, and a decrypted channel secret in the
locals of the webhook's frames. Here, in every mode:

* a setting, ``META`` entry, cookie or frame local is masked when its name says
  key, secret, token, password, credential, signature, session, cookie, envelope or a
  message body / payload, and any URL with a password has that password masked,
  wherever it appears (dicts, lists, tuples included);
* ``sensitive_variables`` / ``sensitive_post_parameters`` are honoured with
  ``DEBUG`` on too;
* as a last line, the text of every secret the settings hold (KEK, Vault token,
  ``SECRET_KEY``, database passwords, the audit signing key, URL passwords) is
  replaced wherever it still shows up in the rendered report;
* a report that cannot be encoded as UTF-8 (a lone surrogate from a JSON body
  in a local) is escaped instead of raising again: otherwise every middleware
  layer above renders yet another, larger report of the new error, which took
  20 seconds a request before failing anyway.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

SUBSTITUTE = "********************"

# Names (settings, META keys, cookies, local variables, dict keys) whose values are masked.
SENSITIVE_NAME = re.compile(
    r"API|AUTH|TOKEN|KEY|KEK|DEK|SECRET|PASS|PWD|SIGNATURE|CREDENTIAL|PRIVATE|COOKIE|SESSION|ENVELOPE"
    r"|CSRF|PLAINTEXT|PAYLOAD|^raw$|^body$|^data$",
    flags=re.I,
)
# scheme://user:password@host — the password part.
URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.\-]*://[^/\s:@]*:)(?P<password>[^@/\s]+)(?=@)", re.I
)


def mask_url_passwords(text: str) -> str:
    return URL_PASSWORD.sub(lambda m: m.group("head") + SUBSTITUTE, text)


def _settings_secrets() -> set[str]:
    """The text of every secret the settings hold (for the last-line replacement)."""
    found: set[str] = set()
    for name in (
        "SECRET_KEY",
        "PARLEY_LOCAL_KEK",
        "PARLEY_VAULT_TOKEN",
        "PARLEY_AUDIT_SIGNING_KEY",
        "EMAIL_HOST_PASSWORD",
    ):
        value = getattr(settings, name, None)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and value.strip():
            found.add(value.strip())
            # A PEM key shows up line by line in a pretty-printed value.
            found.update(line for line in value.splitlines() if len(line) >= 16)
    for config in getattr(settings, "DATABASES", {}).values():
        if config.get("PASSWORD"):
            found.add(str(config["PASSWORD"]))
    for url in (
        getattr(settings, "REDIS_URL", ""),
        getattr(settings, "CELERY_BROKER_URL", ""),
        getattr(settings, "CELERY_RESULT_BACKEND", ""),
    ):
        password = urlsplit(url).password if isinstance(url, str) else None
        if password:
            found.add(password)
    # Short values would mask ordinary words on the page; real secrets are longer.
    return {s for s in found if len(s) >= 6}


def scrub(text: str) -> str:
    """Mask URL passwords and every known secret in rendered report text."""
    text = mask_url_passwords(text)
    for secret in sorted(_settings_secrets(), key=len, reverse=True):
        text = text.replace(secret, SUBSTITUTE)
    return text


class SecretsFilter(SafeExceptionReporterFilter):
    """``DEFAULT_EXCEPTION_REPORTER_FILTER``: masks by name and URL, in every mode."""

    hidden_settings = SENSITIVE_NAME

    def is_active(self, request) -> bool:
        # Django switches the filter off with DEBUG on; a secret on a developer's
        # screen (or in a screenshot, a shared log) is still a leaked secret.
        return True

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            cleansed = mask_url_passwords(cleansed)
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        # Django masks locals only where @sensitive_variables names them; a
        # local called ``secret`` or ``kek`` is masked wherever it is.
        return [(name, self.cleanse_setting(name, value)) for name, value in variables]


class SafeExceptionReporter(ExceptionReporter):
    """``DEFAULT_EXCEPTION_REPORTER``: the reports above, scrubbed and always encodable."""

    @staticmethod
    def _encodable(text: str) -> str:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

    def get_traceback_html(self):
        return self._encodable(scrub(str(super().get_traceback_html())))

    def get_traceback_text(self):
        return self._encodable(scrub(str(super().get_traceback_text())))
