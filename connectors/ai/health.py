"""A provider's health, as seen by its last call (kept apart so the client and the
services can both record it without importing each other)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audit.services import record
from connectors.models import AiProvider


def health_ok(*, provider_id: int) -> None:
    AiProvider.objects.filter(pk=provider_id).exclude(health=AiProvider.Health.OK).update(
        health=AiProvider.Health.OK, last_error_code=""
    )


def health_failed(*, provider_id: int, code: str, auth_failed: bool = False) -> None:
    """A call failed for a reason about the provider. Refused credentials mark it
    ``auth_failed`` (the bots stop using it) and, the first time, are audited."""
    health = AiProvider.Health.AUTH_FAILED if auth_failed else AiProvider.Health.FAILING
    with transaction.atomic():
        provider = AiProvider.objects.select_for_update().filter(pk=provider_id).first()
        if provider is None:
            return
        newly_refused = auth_failed and provider.health != AiProvider.Health.AUTH_FAILED
        provider.health = health
        provider.last_error_code = code[:40]
        provider.last_error_at = timezone.now()
        provider.save(update_fields=["health", "last_error_code", "last_error_at"])
        if newly_refused:
            record(
                "ai_provider.auth_failed",
                outcome="failed",
                target_type="ai_provider",
                target_id=provider.pk,
                details={"name": provider.name, "code": code[:40]},
            )
