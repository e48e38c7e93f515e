"""Tasks run in the tenant that enqueued them, on a real worker process."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import tenant_context

from tenants.models import Tenant
from tenants.tasks import tenant_usage_refresh

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _active_users(tenant) -> int:
    with tenant_context(tenant):
        return get_user_model().objects.filter(is_active=True).count()


def test_it_runs_a_task_in_the_schema_of_the_tenant_that_enqueued_it(default_worker, acme, globex):
    expected = {"acme": _active_users(acme), "globex": _active_users(globex)}
    assert expected["acme"] != expected["globex"]  # acme has a second agent: counts tell them apart
    for tenant in (acme, globex):
        with tenant_context(tenant):
            result = tenant_usage_refresh.delay()
        outcome = result.get(timeout=30)
        assert outcome == {"schema": tenant.schema_name, "users": expected[tenant.slug]}
    # The worker committed the figures on each tenant's public row.
    assert Tenant.objects.get(slug="acme").usage_users == expected["acme"]
    assert Tenant.objects.get(slug="globex").usage_users == expected["globex"]


def test_it_fails_loudly_when_a_tenant_task_has_no_tenant(default_worker):
    result = tenant_usage_refresh.delay()  # enqueued from the public schema
    with pytest.raises(Exception, match="must run in a tenant schema, not 'public'") as excinfo:
        result.get(timeout=30)
    assert type(excinfo.value).__name__ == "TenantRequiredError"


def test_every_beat_entry_names_a_registered_task():
    """A periodic job that names no task would silently never run."""
    from parley.celery import app

    app.loader.import_default_modules()
    registered = set(app.tasks)
    schedule = app.conf.beat_schedule
    assert {"audit-anchor", "audit-seal", "audit-forward", "grants-expire"} <= set(schedule)
    missing = {
        name: entry["task"] for name, entry in schedule.items() if entry["task"] not in registered
    }
    assert missing == {}


def test_it_refuses_to_run_a_task_whose_schema_cannot_be_switched_to(default_worker):
    """The schema switch runs before the task; when it fails the task must not run on
    in whatever schema the connection was in (Celery swallows the switch's error)."""
    from parley.celery import app

    result = app.send_task(
        "parley.tasks.resume_rekeys", headers={"_schema_name": "t_no_such_tenant"}
    )
    with pytest.raises(Exception) as excinfo:
        result.get(timeout=30)
    assert type(excinfo.value).__name__ == "DoesNotExist"
