"""Bot tasks: run the engine for an inbound message, train a published version."""

from __future__ import annotations

import logging

from django.db import connection
from django_tenants.utils import tenant_context

from bots import engine, training
from parley.celery import app, broker_reachable, tenant_task
from tenants.models import Tenant

logger = logging.getLogger(__name__)

BUSY_RETRIES = 30


@tenant_task(bind=True, acks_late=True, max_retries=BUSY_RETRIES + 10)
def flow_message_process(self, message_id: int) -> dict:
    """The engine for one inbound message (enqueued on ``message_received``).
    Idempotent: a message the run has seen already is skipped."""
    outcome = engine.message_process(message_id=message_id)
    if outcome == "busy":
        # Another worker walks this conversation right now: this message comes next.
        raise self.retry(countdown=1)
    return {"schema": connection.schema_name, "message": message_id, "outcome": outcome}


@tenant_task()
def flow_messages_resume() -> dict:
    """Beat: messages of conversations the bot is walking whose enqueue was lost."""
    ids = engine.messages_waiting()
    sent = sum(_enqueue(flow_message_process, message_id) for message_id in ids)
    return {"schema": connection.schema_name, "waiting": len(ids), "enqueued": sent}


@app.task(acks_late=True)
def flow_version_train(schema: str, version_id: int) -> dict:
    """Train a published version's intent model, in ``schema`` (a business tenant)."""
    tenant = Tenant.objects.filter(schema_name=schema, is_template=False).first()
    if tenant is None or schema == "public":
        raise ValueError("flow_version_train needs a business tenant's schema")
    with tenant_context(tenant):
        state = training.flow_version_train(version_id=version_id)
    return {"schema": schema, "version": version_id, "training": state}


def _enqueue(task, *args) -> bool:
    """Publish after commit; never raises and never blocks on a dead broker (the
    message is stored either way; the customer's next message finds the run)."""
    if not broker_reachable():
        logger.warning("could not enqueue %s: broker unreachable", task.name)
        return False
    try:
        task.delay(*args)
    except Exception as exc:  # noqa: BLE001 - any broker failure: logged by type
        logger.warning("could not enqueue %s: %s", task.name, type(exc).__name__)
        return False
    return True


def on_message_received(
    *, message_id: int, schema: str, conversation_id=None, inbox_id=None, **_: object
) -> None:
    """Subscriber of ``conversations.events.message_received`` (BotsConfig.ready).
    A message no bot can take (no live flow on its inbox, no open run on its
    conversation) costs one or two cheap reads here instead of a task per message."""
    if connection.schema_name != schema:
        logger.error("message_received for %s seen in %s: ignored", schema, connection.schema_name)
        return
    if (
        inbox_id is not None
        and conversation_id is not None
        and not engine.bot_may_take(inbox_id=inbox_id, conversation_id=conversation_id)
    ):
        return
    _enqueue(flow_message_process, message_id)


def on_taken_over(*, conversation_id: int, schema: str, **_: object) -> None:
    """Subscriber of ``conversations.events.taken_over``: the bot's open run ends."""
    if connection.schema_name != schema:
        logger.error("taken_over for %s seen in %s: ignored", schema, connection.schema_name)
        return
    engine.run_end_for_human(conversation_id=conversation_id)
