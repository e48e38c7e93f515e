"""Conversation upkeep run by beat in every tenant."""

from __future__ import annotations

from conversations import services
from parley.celery import tenant_task


@tenant_task()
def snoozed_wake() -> int:
    return services.snoozed_wake()
