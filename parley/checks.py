"""System checks for mistakes that would weaken isolation."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.checks import Error, register


@register()
def platform_is_not_a_package(app_configs, **kwargs):
    init = Path(settings.BASE_DIR) / "platform" / "__init__.py"
    if init.exists():
        return [
            Error(
                "platform/__init__.py exists: a package named 'platform' shadows the standard library.",
                hint="Keep platform/ for deployment files only.",
                id="parley.E001",
            )
        ]
    return []


@register()
def identity_apps_are_per_tenant(app_configs, **kwargs):
    needed = {
        "django.contrib.auth",
        "django.contrib.sessions",
        "django_otp",
        "guardian",
        "rest_framework_simplejwt.token_blacklist",
        "accounts",
    }
    missing = sorted(needed - set(settings.TENANT_APPS))
    if missing:
        return [
            Error(f"Identity apps missing from TENANT_APPS: {', '.join(missing)}", id="parley.E002")
        ]
    return []
