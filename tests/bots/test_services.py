"""The bots services called directly: authorisation inside them, training enqueued on
commit at publish, the next draft copied from the live version, audit details."""

from __future__ import annotations

import json

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connection
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from bots import services
from bots.models import FlowVersion
from bots.tasks import flow_version_train
from tests.bots.api_support import GOOD, INTENTS

pytestmark = pytest.mark.django_db


def _user(role: str):
    return get_user_model().objects.get(email=f"{role}@acme.test")


def _queued(version_id: int) -> list[dict]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    found = []
    for raw in client.lrange("default", 0, -1):
        message = json.loads(raw)
        headers = message.get("headers", {})
        if headers.get("task") == "bots.tasks.flow_version_train" and str(version_id) in str(
            headers.get("argsrepr")
        ):
            found.append(headers)
    return found


def test_publishing_intents_enqueues_training_on_commit(acme, django_capture_on_commit_callbacks):
    with tenant_context(acme):
        marketer = _user("marketer")
        flow = services.flow_create(by=marketer, name="Intents")
        services.draft_save(by=marketer, flow=flow, graph=INTENTS)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            version = services.flow_publish(by=marketer, flow=flow)
        assert version.training == FlowVersion.Training.PENDING
        assert _queued(version.pk) == []  # nothing before the commit
        for callback in callbacks:
            callback()
        queued = _queued(version.pk)
        assert len(queued) == 1 and acme.schema_name in queued[0]["argsrepr"]
        # What the worker does with it:
        assert flow_version_train(acme.schema_name, version.pk)["training"] == "ready"
        version.refresh_from_db()
        assert version.training == "ready" and version.intent_model
    connection.set_schema_to_public()


def test_publishing_without_intents_enqueues_nothing(acme, django_capture_on_commit_callbacks):
    with tenant_context(acme):
        marketer = _user("marketer")
        flow = services.flow_create(by=marketer, name="Plain")
        services.draft_save(by=marketer, flow=flow, graph=GOOD)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            version = services.flow_publish(by=marketer, flow=flow)
        assert version.training == FlowVersion.Training.NONE
        assert [c for c in callbacks if "enqueue" in getattr(c, "__qualname__", "")] == []
    connection.set_schema_to_public()


def test_the_next_draft_is_a_copy_of_the_live_version(acme):
    with tenant_context(acme):
        owner = _user("owner")
        flow = services.flow_create(by=owner, name="Copy")
        services.draft_save(by=owner, flow=flow, graph=GOOD)
        live = services.flow_publish(by=owner, flow=flow)
        draft = services.draft_get_or_create(by=owner, flow=flow)
        assert draft.number == 2 and draft.status == "draft" and draft.graph == live.graph
        assert services.draft_get_or_create(by=owner, flow=flow).pk == draft.pk
    connection.set_schema_to_public()


@pytest.mark.parametrize("role", ["agent", "analyst", "integrator"])
def test_services_check_flows_edit_themselves(acme, role):
    with tenant_context(acme):
        flow = services.flow_create(by=_user("marketer"), name="Guarded")
        who = _user(role)
        for call in [
            lambda: services.flow_create(by=who, name="x"),
            lambda: services.flow_update(by=who, flow=flow, name="y"),
            lambda: services.draft_save(by=who, flow=flow, graph=GOOD),
            lambda: services.flow_publish(by=who, flow=flow),
            lambda: services.flow_delete(by=who, flow=flow),
            lambda: services.flow_simulate(by=who, flow=flow, messages=["hi"]),
            lambda: services.article_create(by=who, title="t", body="b"),
        ]:
            with pytest.raises(PermissionDenied):
                call()
    connection.set_schema_to_public()


def test_a_marketer_cannot_touch_the_allow_list(acme):
    with tenant_context(acme):
        with pytest.raises(PermissionDenied):
            services.allowed_host_add(by=_user("marketer"), host="api.example.com")
        services.allowed_host_add(by=_user("admin"), host="api.example.com")
        with pytest.raises(PermissionDenied):
            services.allowed_host_remove(by=_user("marketer"), host="api.example.com")
    connection.set_schema_to_public()


def test_audit_events_name_ids_never_the_graph(acme):
    with tenant_context(acme):
        marketer = _user("marketer")
        flow = services.flow_create(by=marketer, name="Audited")
        services.draft_save(by=marketer, flow=flow, graph=GOOD)
        services.flow_publish(by=marketer, flow=flow, note="go")
        events = {
            e.action: e
            for e in AuditEvent.objects.filter(target_type="flow", target_id=str(flow.pk))
        }
        assert set(events) == {"flow.created", "flow.draft_saved", "flow.published"}
        saved = events["flow.draft_saved"]
        assert saved.actor_name == "marketer@acme.test"
        assert set(saved.details) == {"version", "number", "nodes"}
        assert "Hi there" not in json.dumps([e.details for e in events.values()])
    connection.set_schema_to_public()
