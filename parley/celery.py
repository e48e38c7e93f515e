"""The Celery app: tenant-aware (tenant-schemas-celery).

A task enqueued while a tenant is active carries that tenant's schema in its
headers and runs in that schema on the worker. Tasks that only make sense
inside a tenant are declared with :func:`tenant_task`, which refuses to run in
the public schema instead of silently working on the wrong data.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import redis
from celery.schedules import crontab
from celery.signals import task_prerun
from celery.utils.time import get_exponential_backoff_interval
from django.apps import apps
from django.conf import settings
from django.db import connection
from tenant_schemas_celery.app import CeleryApp, get_schema_name_from_task, switch_schema
from tenant_schemas_celery.task import TenantTask

from parley import faults
from parley.env import env_int
from parley.heartbeat import record_heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parley.settings")


class ParleyTask(TenantTask):
    """Every task: a database or Redis outage met while running is retried with
    backoff (1, 2, 4 … 60 s, about three minutes in all) instead of failing the
    task. Tasks are idempotent (STYLE.md), so running one again is safe; the
    worker process itself never stops for it."""

    abstract = True
    autoretry_for = faults.DATABASE_ERRORS + faults.REDIS_ERRORS
    retry_backoff = True
    retry_backoff_max = 60
    retry_jitter = True
    retry_kwargs = {"max_retries": 8}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        failed = getattr(self.request, "parley_schema_failed", None)
        if failed is not None:
            raise failed  # never run in whatever schema the connection was left in
        unavailable = getattr(self.request, "parley_schema_unavailable", None)
        if unavailable is not None:
            # The tenant could not even be looked up (see _switch_schema): run
            # nothing, send the task again to the same schema after a back-off.
            raise self.retry(
                exc=unavailable,
                countdown=get_exponential_backoff_interval(
                    factor=1, retries=self.request.retries, maximum=self.retry_backoff_max
                ),
                max_retries=self.retry_kwargs["max_retries"],
                headers={"_schema_name": get_schema_name_from_task(self, kwargs)},
            )
        return super().__call__(*args, **kwargs)


# tenant-schemas-celery looks the task's tenant up in a task_prerun receiver.
# Celery logs and swallows a receiver's exception, so with the database down
# (or an unknown schema) the task used to run on in the public schema, and a
# tenant task failed for good. Ours hands the failure to __call__ above:
# an outage is retried, anything else fails the task before it runs.
task_prerun.disconnect(switch_schema, dispatch_uid="tenant_schemas_switch_schema")


@task_prerun.connect(dispatch_uid="parley_switch_schema")
def _switch_schema(task=None, kwargs=None, **signal_kwargs: Any) -> None:
    try:
        switch_schema(task, kwargs, **signal_kwargs)
    except faults.DATABASE_ERRORS as exc:
        faults.close_broken_connections()
        task.request.parley_schema_unavailable = exc
    except Exception as exc:
        task.request.parley_schema_failed = exc


app = CeleryApp("parley", task_cls=ParleyTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Proves that beat and at least one worker are alive (read by /healthz).
    # Every tick also asks the database for the schemas to send to (the fault
    # test shortens it to see beat ride through an outage).
    "heartbeat": {
        "task": "parley.tasks.heartbeat",
        "schedule": float(env_int("PARLEY_HEARTBEAT_SECONDS", 15, minimum=1, maximum=3600)),
        "tenant_schemas": ["public"],
    },
    # Per-tenant usage figures for the platform console; runs once per tenant.
    "tenant-usage": {
        "task": "tenants.tasks.tenant_usage_refresh",
        "schedule": crontab(minute="*/15"),
    },
    # Audit: chain what a crashed process left unsealed, deliver to SIEM sinks,
    # and anchor every chain head (tail truncation detection).
    "audit-seal": {"task": "audit.tasks.seal_events", "schedule": 60.0},
    "audit-seal-platform": {
        "task": "audit.tasks.seal_events",
        "schedule": 60.0,
        "tenant_schemas": ["public"],
    },
    "audit-forward": {"task": "audit.tasks.forward_all_sinks", "schedule": 30.0},
    "audit-forward-platform": {
        "task": "audit.tasks.forward_all_sinks",
        "schedule": 30.0,
        "tenant_schemas": ["public"],
    },
    "audit-anchor": {
        "task": "audit.tasks.anchor_chain_heads",
        "schedule": crontab(minute="*/5"),
        "tenant_schemas": ["public"],
    },
    # Keyring: restart re-encryption jobs whose worker died.
    "keyring-resume": {
        "task": "parley.tasks.resume_rekeys",
        "schedule": 120.0,
        "tenant_schemas": ["public"],
    },
    "credential-reminders": {
        "task": "connectors.tasks.credential_rotation_reminders",
        "schedule": crontab(hour=7, minute=0),
    },
    "tenants-offboard": {
        "task": "tenants.tasks.offboard_due",
        "schedule": crontab(minute=10),
        "tenant_schemas": ["public"],
    },
    # Replies whose delivery was never enqueued (broker down at commit).
    "deliveries-resume": {"task": "connectors.tasks.deliveries_resume", "schedule": 120.0},
    # Inbound webhook events stored while the broker was down (or whose enqueue was lost).
    "inbound-events-relay": {
        "task": "connectors.tasks.inbound_events_relay",
        "schedule": float(env_int("PARLEY_INBOUND_RELAY_SECONDS", 30, minimum=1, maximum=3600)),
    },
    "inbound-events-purge": {
        "task": "connectors.tasks.inbound_events_purge",
        "schedule": crontab(hour=4, minute=15),
    },
    # Bot flows: a customer's answer whose enqueue was lost (broker down at commit).
    "bots-resume": {"task": "bots.tasks.flow_messages_resume", "schedule": 60.0},
    "conversations-wake": {"task": "conversations.tasks.snoozed_wake", "schedule": 60.0},
    # API token families and spent-token ids a day past their absolute end.
    "tokens-purge": {"task": "accounts.tasks.tokens_purge", "schedule": crontab(hour=3, minute=30)},
    # Just-in-time grants past their end are marked expired (checks never rely on it).
    "grants-expire": {"task": "accounts.tasks.grants_expire", "schedule": 60.0},
    # Break-glass grants past their deadline are marked expired (requests check it anyway).
    "break-glass-expire": {
        "task": "tenants.tasks.break_glass_expire_due",
        "schedule": 60.0,
        "tenant_schemas": ["public"],
    },
}


_probe: redis.Redis | None = None


def broker_client() -> redis.Redis:
    """The process's one client of the broker's Redis, with 250 ms timeouts (a dead
    broker answers ``redis.RedisError`` at once instead of blocking a request)."""
    global _probe
    if _probe is None:
        _probe = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_connect_timeout=0.25, socket_timeout=0.25
        )
    return _probe


def broker_reachable() -> bool:
    """Whether the broker answers a ping within 250 ms. Publishing to a dead broker
    blocks in Celery's connection retries for seconds: a webhook must answer at once
    (callers enqueue after commit, and what they stored is picked up later)."""
    try:
        return bool(broker_client().ping())
    except redis.RedisError:
        return False


class TenantRequiredError(RuntimeError):
    """A task that works on one tenant's data was run with no tenant."""


def tenant_task(*task_args: Any, **task_kwargs: Any) -> Callable:
    """``@app.task`` for work that must run inside a tenant schema."""

    def decorator(func: Callable) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            schema = getattr(connection, "schema_name", None)
            tenant = getattr(connection, "tenant", None)
            if (
                not schema
                or schema == "public"
                or not isinstance(tenant, apps.get_model(settings.TENANT_MODEL))
                or tenant.is_template
            ):
                raise TenantRequiredError(
                    f"{func.__module__}.{func.__name__} must run in a tenant schema, not {schema!r}: "
                    "enqueue it while a tenant is active (tenant_context / a tenant request)."
                )
            return func(*args, **kwargs)

        return app.task(*task_args, **task_kwargs)(wrapper)

    return decorator


from celery.signals import task_postrun, worker_ready  # noqa: E402
from django.db import close_old_connections  # noqa: E402


# Celery's Django fixup closes every database connection before and after each
# task (unless CELERY_DB_REUSE_MAX), so each task paid a new PostgreSQL backend:
# connect, authenticate, set the time zone and search_path, and cold catalog
# caches (about half the database time of a reply; docs/scaling.md, "Channels:
# measured"). CELERY_DB_REUSE_MAX in settings turns that off; a worker process
# then keeps its connection like a web thread does, and after each task closes
# it only when Django would after a request: older than CONN_MAX_AGE, broken,
# or left outside autocommit. django-tenants sets the next task's search_path
# (tenant_schemas_celery switches schema before every task).
@task_postrun.connect(dispatch_uid="parley_close_old_connections")
def _close_old_connections(sender=None, **kwargs: Any) -> None:
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # run in the caller's process and transaction (tests, .apply())
    close_old_connections()


@worker_ready.connect
def _announce_worker(**kwargs: Any) -> None:
    record_heartbeat()
