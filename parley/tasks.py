"""Platform-level tasks."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from parley.celery import app
from parley.heartbeat import record_heartbeat
from parley.keyring.rekey import run
from parley.models import RekeyJob


@app.task(ignore_result=True)
def heartbeat() -> None:
    record_heartbeat()


@app.task(bind=True, acks_late=True, max_retries=5, default_retry_delay=10)
def rekey(self, job_id: int) -> dict:
    """Re-encrypt a tenant's rows onto the newest key, a few batches per run."""
    job = run(job_id, max_batches=20)
    if job.state != RekeyJob.State.DONE:
        # Continue in a new task on the same queue: a restart loses nothing.
        queue = (self.request.delivery_info or {}).get("routing_key")
        self.apply_async((job_id,), queue=queue) if queue else rekey.delay(job_id)
    return {"job": job_id, "state": job.state, "done": job.rows_done, "total": job.rows_total}


@app.task
def resume_rekeys(stale_seconds: int = 120) -> int:
    """Beat: restart jobs that are pending or whose worker stopped beating (killed)."""
    cutoff = timezone.now() - timedelta(seconds=stale_seconds)
    stale = RekeyJob.objects.filter(
        Q(state=RekeyJob.State.PENDING, created_at__lt=cutoff)
        | Q(state=RekeyJob.State.RUNNING, heartbeat_at__lt=cutoff)
    )
    ids = list(stale.values_list("id", flat=True))
    for job_id in ids:
        rekey.delay(job_id)
    return len(ids)
