"""AI provider writes: create, update, delete, test. Each needs ``connectors.manage``
and is audited in its own transaction; the API key is write-only (a vaulted
``Credential``; its last four characters are the only trace)."""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from accounts.policy import Perm, user_has
from audit.services import record
from connectors.ai.client import AiProviderError, chat_complete
from connectors.models import AiProvider, Credential
from connectors.services import (
    MAX_SECRET,
    credential_delete,
    credential_replace,
    credential_set,
)
from parley import outbound
from parley.validation import clean_text, parse_int, text_problem

CONNECTOR = "openai"
MAX_BASE_URL = 300
TIMEOUT_MIN, TIMEOUT_MAX, TIMEOUT_DEFAULT = 1, 120, 15
MAX_TOKENS_MIN, MAX_TOKENS_MAX, MAX_TOKENS_DEFAULT = 1, 8192, 400
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}")
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}\.)*[a-z0-9-]{0,63}")
_KEY = re.compile(rf"[\x21-\x7e]{{8,{MAX_SECRET}}}")
FIELDS = ("name", "base_url", "model", "enabled", "timeout_seconds", "max_tokens")


def _require(by) -> None:
    if not user_has(by, Perm.CONNECTORS_MANAGE):
        raise PermissionDenied
    if getattr(by, "is_break_glass", False):
        raise PermissionDenied("Break-glass access is read-only.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_clean(value) -> str:
    """An https URL of an OpenAI-compatible API (``https://api.openai.com/v1``).

    As a Meta channel's ``graph_base_url``: no credentials, query or fragment, and
    a host ``parley.outbound``'s destination guard accepts. http only for a
    loopback host outside production (a model served on this machine, or the test
    fake)."""
    url = clean_text(
        value, field="base_url", label="The base URL", max_length=MAX_BASE_URL, required=True
    )
    if not url.isascii() or not url.isprintable():
        raise ValidationError({"base_url": "Use an ASCII URL (punycode for international names)."})
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValidationError({"base_url": "The port is not a number from 1 to 65535."}) from None
    host = parts.hostname or ""
    literal = host.startswith("[") or ":" in host
    if not host or not (literal or _HOST.fullmatch(host)):
        raise ValidationError({"base_url": "Use an https:// URL with a host name."})
    if parts.username or parts.password or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValidationError(
            {
                "base_url": "Leave credentials, query and fragment out of the URL: the key goes in its own field."
            }
        )
    if parts.scheme == "http":
        if settings.PRODUCTION or not _is_loopback(host):
            raise ValidationError(
                {
                    "base_url": "Use https (http only for a model on this machine, outside production)."
                }
            )
    elif parts.scheme != "https":
        raise ValidationError({"base_url": "Use an https:// URL with a host name."})
    try:
        outbound.check_destination(host, port or (443 if parts.scheme == "https" else 80))
    except outbound.OutboundError as exc:
        raise ValidationError({"base_url": f"Refused: {exc}."}) from None
    return url.rstrip("/")


@sensitive_variables("value")
def _key_clean(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError({"api_key": "Give the provider's API key."}, code="invalid")
    if text_problem(value) or not _KEY.fullmatch(value):
        raise ValidationError(
            {"api_key": f"An API key is 8 to {MAX_SECRET} printable ASCII characters, no spaces."},
            code="invalid",
        )
    return value


def _values_clean(values: dict, *, partial: bool) -> dict:
    out: dict = {}
    if not partial or "name" in values:
        out["name"] = clean_text(
            values.get("name"), field="name", label="The name", max_length=80, required=True
        )
    if not partial or "base_url" in values:
        out["base_url"] = base_url_clean(values.get("base_url"))
    if not partial or "model" in values:
        model = clean_text(
            values.get("model"), field="model", label="The model", max_length=100, required=True
        )
        if not _MODEL.fullmatch(model):
            raise ValidationError(
                {"model": "A model name is letters, digits and . _ : / @ + - (e.g. gpt-4o-mini)."}
            )
        out["model"] = model
    if "enabled" in values:
        if not isinstance(values["enabled"], bool):
            raise ValidationError({"enabled": "true or false."})
        out["enabled"] = values["enabled"]
    for field, label, low, high, default in (
        ("timeout_seconds", "The timeout", TIMEOUT_MIN, TIMEOUT_MAX, TIMEOUT_DEFAULT),
        ("max_tokens", "Max tokens", MAX_TOKENS_MIN, MAX_TOKENS_MAX, MAX_TOKENS_DEFAULT),
    ):
        if field in values and values[field] not in (None, ""):
            out[field] = parse_int(
                values[field], field=field, label=label, minimum=low, maximum=high
            )
        elif not partial:
            out[field] = default
    return out


def _audit(action: str, provider: AiProvider, *, outcome: str = "allowed", **extra) -> None:
    record(
        action,
        outcome=outcome,
        target_type="ai_provider",
        target_id=provider.pk,
        details={
            "name": provider.name,
            "base_url": provider.base_url,
            "model": provider.model,
            **extra,
        },
    )


def _name_free(name: str, *, exclude: int | None = None) -> None:
    taken = AiProvider.objects.filter(name__iexact=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise ValidationError({"name": "An AI provider with this name exists."})


@sensitive_variables("api_key", "key")
def ai_provider_create(*, by, api_key, **values) -> AiProvider:
    """A new provider (``ai_provider.created``); its key is vaulted as a credential."""
    _require(by)
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "Unknown field."})
    cleaned = _values_clean(values, partial=False)
    key = _key_clean(api_key)
    _name_free(cleaned["name"])
    with transaction.atomic():
        credential = credential_set(
            name=f"ai-provider-{secrets.token_hex(6)}",
            kind=Credential.Kind.API_KEY,
            connector=CONNECTOR,
            secret=key,
        )
        provider = AiProvider.objects.create(api_key=credential, **cleaned)
        _audit(
            "ai_provider.created",
            provider,
            enabled=provider.enabled,
            timeout_seconds=provider.timeout_seconds,
            max_tokens=provider.max_tokens,
            key_last4=credential.last4,
        )
    return provider


@sensitive_variables("api_key", "key")
def ai_provider_update(*, by, provider: AiProvider, api_key=None, **values) -> AiProvider:
    """Change some fields (``ai_provider.updated``: which ones, before and after; a
    new key only as ``key_replaced``). An empty or missing key keeps the old one."""
    _require(by)
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "Unknown field."})
    cleaned = _values_clean(values, partial=True)
    key = _key_clean(api_key) if api_key not in (None, "") else None
    if "name" in cleaned:
        _name_free(cleaned["name"], exclude=provider.pk)
    changes = {
        field: {"from": getattr(provider, field), "to": value}
        for field, value in cleaned.items()
        if getattr(provider, field) != value
    }
    with transaction.atomic():
        provider = (
            AiProvider.objects.select_for_update().select_related("api_key").get(pk=provider.pk)
        )
        for field, value in cleaned.items():
            setattr(provider, field, value)
        if key is not None:
            credential_replace(credential=provider.api_key, secret=key)
            # A new key deserves a new chance: the bots may use the provider again.
            provider.health, provider.last_error_code = AiProvider.Health.UNKNOWN, ""
        provider.save()
        _audit("ai_provider.updated", provider, changes=changes, key_replaced=key is not None)
    return provider


def ai_provider_delete(*, by, provider: AiProvider) -> None:
    """Delete the provider and its key (``ai_provider.deleted``, ``credential.deleted``)."""
    _require(by)
    with transaction.atomic():
        credential = provider.api_key
        _audit("ai_provider.deleted", provider)
        provider.delete()
        credential_delete(credential=credential)


@dataclass(frozen=True)
class ProviderTest:
    ok: bool
    code: str  # "ok" or an AiProviderError code
    http_status: int | None = None


TEST_MESSAGES = [
    {"role": "system", "content": "This is a connection test. Reply with the single word OK."},
    {"role": "user", "content": "Connection test."},
]


def ai_provider_test(*, by, provider: AiProvider) -> ProviderTest:
    """One short chat completion with the stored key: records the provider's health
    (a refused key marks it ``auth_failed``) and audits ``ai_provider.tested``
    (code and HTTP status, never the key or the answer)."""
    _require(by)
    if not provider.enabled:
        raise ValidationError({"enabled": "Switch the provider on to test it."})
    try:
        chat_complete(provider, TEST_MESSAGES, max_tokens=5)
    except AiProviderError as exc:
        # chat_complete has recorded the provider's health already.
        result = ProviderTest(False, exc.code, exc.status)
    else:
        result = ProviderTest(True, "ok", 200)
    with transaction.atomic():
        _audit(
            "ai_provider.tested",
            provider,
            outcome="allowed" if result.ok else "failed",
            outcome_code=result.code,
            http_status=result.http_status,
        )
    return result
