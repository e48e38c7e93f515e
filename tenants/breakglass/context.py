"""What templates show of break-glass: the operator's banner and the owners' notice."""

from __future__ import annotations

from typing import Any

from accounts.policy import Perm, user_has
from tenants.breakglass.selectors import grant_notices_for_tenant
from tenants.models import PUBLIC_SCHEMA, BreakGlassGrant


def template_context(request) -> dict[str, Any]:
    """For ``parley.context_processors``: the banner, and the owners' notice (read lazily)."""
    tenant = getattr(request, "tenant", None)
    if tenant is None or getattr(tenant, "schema_name", PUBLIC_SCHEMA) == PUBLIC_SCHEMA:
        return {"parley_break_glass": None, "break_glass_notices": ()}

    def notices() -> list[BreakGlassGrant]:
        if not user_has(getattr(request, "user", None), Perm.BREAK_GLASS_APPROVE):
            return []
        return grant_notices_for_tenant(tenant=tenant)

    return {
        "parley_break_glass": getattr(request, "break_glass", None),
        # A callable: templates call it only where the notice is shown (home page).
        "break_glass_notices": notices,
    }
