"""What ``conversations`` announces, for the layers above it to act on.

``conversations`` stores messages and queues replies; it never imports a
channel, the bot engine or the CRM (DESIGN.md, "The seam"). Instead it
announces, after the transaction commits, and whoever cares subscribes:

- ``message_received(message_id, conversation_id, inbox_id, created)``: an
  inbound message was stored (``created`` False for a repeated delivery, which
  is announced nowhere: see :func:`announce`);
- ``reply_queued(message_id, conversation_id, inbox_id)``: an outbound message
  waits for its channel (the channels' delivery task subscribes, in
  ``ConnectorsConfig.ready``);
- ``delivery_updated(message_id, conversation_id, inbox_id, delivery)``: the
  channel's word on an outbound message changed it;
- ``taken_over(conversation_id, inbox_id)``: a person took a conversation from the
  bot (``takeover``, or an agent's reply while the bot had it): the bot engine ends
  its run.

One question is asked the other way, synchronously: whether an inbox's auto-reply
should stay quiet for a new conversation (a bot greets it instead). Layers above
register a veto with :func:`auto_reply_veto_register`; ``conversations`` never
knows who answered.

Receivers get ids, never model instances (they may run in another process
later), plus ``schema``: the tenant schema the ids belong to. A receiver that
raises is logged by type and does not stop the others: each is responsible for
its own retry (the delivery task has ``deliveries_resume``).
"""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

message_received = Signal()
reply_queued = Signal()
delivery_updated = Signal()
taken_over = Signal()

_auto_reply_vetoes: list = []


def auto_reply_veto_register(veto) -> None:
    """``veto(inbox_id) -> bool``: True keeps the inbox's auto-reply from a new conversation."""
    if veto not in _auto_reply_vetoes:
        _auto_reply_vetoes.append(veto)


def auto_reply_vetoed(inbox_id: int) -> bool:
    """Whether a registered veto keeps the auto-reply quiet; one that fails does not
    (logged by type): storing the customer's message matters more."""
    for veto in _auto_reply_vetoes:
        try:
            with transaction.atomic():  # a failed query must not poison the caller's
                if veto(inbox_id):
                    return True
        except Exception as exc:  # noqa: BLE001 - any veto failure: the auto-reply goes out
            logger.error(
                "auto-reply veto %s failed: %s",
                getattr(veto, "__qualname__", veto),
                type(exc).__name__,
            )
    return False


def send_now(signal: Signal, name: str, kwargs: dict) -> None:
    """Call every receiver of ``signal`` now (use :func:`announce` inside a transaction)."""
    for receiver, result in signal.send_robust(sender=None, **kwargs):
        if isinstance(result, Exception):
            # By type only: an exception's text may carry an id or a payload.
            logger.error(
                "conversations event %s: receiver %s failed: %s",
                name,
                getattr(receiver, "__qualname__", receiver),
                type(result).__name__,
            )


def announce(signal: Signal, name: str, **kwargs) -> None:
    """Send ``signal`` once the current transaction commits (at once outside one)."""
    kwargs.setdefault("schema", connection.schema_name)
    transaction.on_commit(lambda: send_now(signal, name, kwargs))
