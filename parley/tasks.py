"""Platform-level tasks."""

from __future__ import annotations

from parley.celery import app
from parley.health import record_heartbeat


@app.task(ignore_result=True)
def heartbeat() -> None:
    record_heartbeat()
