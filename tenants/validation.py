"""Input rules for tenant slugs, names and domains (shared by CLI, console, API)."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,38}[a-z0-9]$")
LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

# Names that would collide with the platform's own hosts, schemas or routes.
RESERVED_NAMES = frozenset(
    {
        "public",
        "www",
        "api",
        "admin",
        "static",
        "media",
        "platform",
        "console",
        "app",
        "mail",
        "smtp",
        "template",
        "tenant-template",
        "root",
        "postgres",
        "pg",
        "healthz",
        "webhooks",
        "assets",
        "help",
        "support",
        "status",
        "docs",
        "auth",
        "login",
        "system",
        "information-schema",
        "localhost",
        "parley",
    }
)


def schema_name_for(slug: str) -> str:
    return "t_" + slug.replace("-", "_")


def clean_slug(value: str) -> str:
    slug = (value or "").strip().lower()
    if not SLUG_RE.match(slug) or "--" in slug:
        raise ValidationError(
            "Invalid slug %(slug)r: use 3-40 lowercase letters, digits and single hyphens, "
            "starting with a letter and not ending with a hyphen.",
            code="invalid_slug",
            params={"slug": value},
        )
    if slug in RESERVED_NAMES or slug.startswith("pg-"):
        raise ValidationError(
            "The slug %(slug)r is reserved.", code="reserved_slug", params={"slug": slug}
        )
    return slug


def clean_name(value: str) -> str:
    name = " ".join((value or "").split())
    if not name or len(name) > 120:
        raise ValidationError("The name must have 1 to 120 characters.", code="invalid_name")
    if any(ord(ch) < 32 for ch in name):
        raise ValidationError("The name contains control characters.", code="invalid_name")
    return name


def clean_domain(value: str) -> str:
    domain = (value or "").strip().lower().rstrip(".")
    if ":" in domain or "/" in domain:
        raise ValidationError(
            "Invalid domain %(domain)r: give a host name only, without port, scheme or path.",
            code="invalid_domain",
            params={"domain": value},
        )
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(LABEL_RE.match(label) for label in labels):
        raise ValidationError(
            "Invalid domain %(domain)r: use a host name such as acme.%(base)s.",
            code="invalid_domain",
            params={"domain": value, "base": settings.PARLEY_BASE_DOMAIN},
        )
    if labels[-1].isdigit():
        raise ValidationError("An IP address cannot be a tenant domain.", code="invalid_domain")
    if domain == settings.PARLEY_BASE_DOMAIN:
        raise ValidationError(
            "The bare platform domain belongs to the platform console.", code="reserved_domain"
        )
    if labels[0] in RESERVED_NAMES:
        raise ValidationError(
            "The host name %(label)r is reserved.",
            code="reserved_domain",
            params={"label": labels[0]},
        )
    return domain


def clean_email(value: str) -> str:
    email = (value or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError(
            "Invalid owner e-mail %(email)r.", code="invalid_email", params={"email": value}
        ) from None
    local, _, host = email.rpartition("@")
    return f"{local}@{host.lower()}"
