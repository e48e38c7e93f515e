"""Reads of the audit trail (current schema)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from audit.models import AuditEvent, AuditSink


@dataclass(frozen=True)
class EventFilter:
    actor: str = ""
    action: str = ""
    outcome: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def narrowing(self) -> dict[str, str]:
        """The filters that pick events out of the chain (not a plain time range)."""
        return {
            name: value
            for name, value in (
                ("actor", self.actor),
                ("action", self.action),
                ("outcome", self.outcome),
            )
            if value
        }


def event_list(filters: EventFilter) -> QuerySet[AuditEvent]:
    queryset = AuditEvent.objects.order_by("-id")
    if filters.actor:
        # Exact (case-insensitive): "owner@acme.test" must not also find
        # "rt-owner@acme.test"'s events.
        queryset = queryset.filter(
            Q(actor_name__iexact=filters.actor) | Q(actor_id=filters.actor)
        )
    if filters.action:
        queryset = queryset.filter(action=filters.action)
    if filters.outcome:
        queryset = queryset.filter(outcome=filters.outcome)
    if filters.since:
        queryset = queryset.filter(occurred_at__gte=filters.since)
    if filters.until:
        queryset = queryset.filter(occurred_at__lt=filters.until)
    return queryset


def event_page(
    filters: EventFilter, *, before: int | None, size: int
) -> tuple[list[AuditEvent], int | None]:
    """One page, newest first, keyset-paginated on ``id``; returns (events, next ``before``)."""
    queryset = event_list(filters)
    if before:
        queryset = queryset.filter(id__lt=before)
    events = list(queryset[: size + 1])
    more = len(events) > size
    events = events[:size]
    return events, (events[-1].id if more and events else None)


def sink_list() -> QuerySet[AuditSink]:
    return AuditSink.objects.order_by("name")


def sink_get(sink_id: int) -> AuditSink:
    from django.http import Http404

    sink = AuditSink.objects.filter(pk=sink_id).first()
    if sink is None:
        raise Http404("No such sink.")
    return sink
