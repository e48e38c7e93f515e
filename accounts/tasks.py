"""Identity upkeep run by beat in every tenant."""

from __future__ import annotations

from parley.celery import tenant_task


@tenant_task()
def grants_expire() -> int:
    """Mark just-in-time grants past their end as expired (audited)."""
    from accounts.services import grants_expire as expire

    return expire()
