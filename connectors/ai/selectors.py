from __future__ import annotations

from django.http import Http404

from connectors.models import AiProvider


def ai_provider_list():
    return AiProvider.objects.select_related("api_key").defer("api_key__secret_ct")


def ai_provider_get(*, provider_id: int) -> AiProvider:
    provider = ai_provider_list().filter(pk=provider_id).first()
    if provider is None:
        raise Http404("No such AI provider.")
    return provider


def ai_provider_for_bots() -> AiProvider | None:
    """The provider the AI answer node calls: the first enabled one (by name) whose
    key has not been refused. None: the bots answer from the knowledge base."""
    return (
        AiProvider.objects.select_related("api_key")
        .filter(enabled=True)
        .exclude(health=AiProvider.Health.AUTH_FAILED)
        .order_by("name")
        .first()
    )
