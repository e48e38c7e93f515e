"""Audit background work: SIEM forwarding and chain-head anchoring."""

from __future__ import annotations

from audit.anchors import anchor_all
from audit.forwarding import forward
from audit.models import AuditSink
from audit.services import seal
from parley.celery import app


@app.task(bind=True, acks_late=True, max_retries=5, default_retry_delay=10)
def forward_sink(self, sink_id: int) -> dict:
    """Deliver one sink's pending events in the current schema (tenant or public)."""
    try:
        result = forward(sink_id)
    except Exception as exc:
        raise self.retry(exc=exc, countdown=min(300, 10 * 2**self.request.retries)) from exc
    if result.get("more"):
        # Continue in a new task: a worker restarting in between loses nothing.
        forward_sink.delay(sink_id)
    return result


@app.task
def forward_all_sinks() -> int:
    """Beat: enqueue delivery for every enabled sink of the current schema."""
    ids = list(AuditSink.objects.filter(enabled=True).values_list("id", flat=True))
    for sink_id in ids:
        forward_sink.delay(sink_id)
    return len(ids)


@app.task
def seal_events() -> int:
    """Beat: chain events a crashed process left unsealed (normally none)."""
    return seal()


@app.task
def anchor_chain_heads() -> int:
    return anchor_all()
