"""Conversation upkeep run by beat in every tenant."""

from __future__ import annotations

from parley.celery import tenant_task


@tenant_task()
def snoozed_wake() -> int:
    from conversations.services import snoozed_wake as wake

    return wake()
