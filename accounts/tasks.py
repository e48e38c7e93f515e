"""Identity upkeep run by beat in every tenant."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.models import TokenFamily
from accounts.services import grants_expire as expire
from parley.celery import tenant_task


@tenant_task()
def grants_expire() -> int:
    """Mark just-in-time grants past their end as expired (audited)."""
    return expire()


@tenant_task()
def tokens_purge(keep_days: int = 1) -> dict:
    """Beat (daily): forget API token families and spent-token ids past their end.

    A refresh token is refused after its family's absolute end anyway; the rows
    only matter until then (reuse detection), so a day later they can go.
    """
    cutoff = timezone.now() - timedelta(days=keep_days)
    tokens, _ = OutstandingToken.objects.filter(expires_at__lt=cutoff).delete()
    families, _ = TokenFamily.objects.filter(expires_at__lt=cutoff).delete()
    return {"tokens": tokens, "families": families}
