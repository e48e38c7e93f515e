"""Every action the audit trail knows. ``record()`` refuses any other name.

Each later capability adds its actions here, with a one-line meaning.
"""

from __future__ import annotations

ACTIONS: dict[str, str] = {
    # authentication
    "auth.login.succeeded": "A user signed in.",
    "auth.login.failed": "A sign-in attempt failed.",
    "auth.logout": "A user signed out.",
    "auth.login.locked": "A sign-in was refused because the account or address is locked.",
    "auth.session.expired": "A session ended by idle timeout or absolute lifetime.",
    # platform: tenants (public chain)
    "tenant.requested": "An operator requested a new tenant from the console.",
    "tenant.created": "A tenant's schema, domain and owner were created.",
    "tenant.provisioning_failed": "Provisioning a requested tenant failed for good.",
    "tenant.suspended": "A tenant was suspended.",
    "tenant.reactivated": "A suspended tenant was reactivated.",
    # users and roles (tenant chain, public chain for operators)
    "user.created": "A user was created.",
    "user.updated": "A user's profile fields changed.",
    "user.role_changed": "A user's role changed.",
    "user.deactivated": "A user was deactivated.",
    "user.reactivated": "A deactivated user was reactivated.",
    "user.password_set": "A user set or changed their password.",
    # the audit trail itself
    "audit.exported": "The audit trail was exported.",
    "audit.sink.created": "A SIEM sink was configured.",
    "audit.sink.updated": "A SIEM sink was changed.",
    "audit.sink.deleted": "A SIEM sink was removed.",
    # keyring and credentials
    "key.rotated": "A tenant data-encryption key was rotated.",
    "credential.set": "A connector credential was stored.",
    "credential.replaced": "A connector credential's secret was replaced (rotated).",
    "credential.deleted": "A connector credential was deleted.",
    "credential.used": "A connector credential was decrypted for one use.",
    "tenant.offboarding_scheduled": "A tenant was closed; its schema and keys go when the retention window ends.",
    "tenant.offboarded": "A tenant's schema was dropped and its keys destroyed (crypto-shredding).",
    # access control
    "access.denied": "A request was refused (403).",
}


def is_known(action: str) -> bool:
    return action in ACTIONS
