from __future__ import annotations

from accounts.policy import Perm, user_has
from tenants.breakglass.context import template_context as break_glass_context


def parley(request) -> dict:
    tenant = getattr(request, "tenant", None)
    user = getattr(request, "user", None)
    is_console = tenant is None or tenant.schema_name == "public"
    return {
        "parley_tenant": None if is_console else tenant,
        "parley_is_console": is_console,
        # What the menu shows comes from the policy table, never from role names.
        "can": {
            perm.name.lower(): (not is_console and user_has(user, perm.value)) for perm in Perm
        },
        # The break-glass banner, and the owners' notice of pending/live grants (lazy).
        **break_glass_context(request),
    }
