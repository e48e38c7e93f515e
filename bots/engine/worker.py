"""The engine in the worker: one inbound message, the run saved after every step."""

from __future__ import annotations

import datetime as _dt
import json

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from bots import ai, knowledge, nodes
from bots.engine.walk import (
    HISTORY_TURNS,
    RUN_TABLE,
    Context,
    advance,
    graph_of,
    intent_scorer,
    kb_answerer,
    step_cap,
    version_model,
)
from bots.graph import GraphError
from bots.models import AllowedHost, Flow, FlowRun, KnowledgeArticle
from connectors.ai.selectors import ai_provider_for_bots
from conversations import services as conversations
from conversations.models import Conversation, Message
from conversations.selectors import body_of
from parley import outbound, validation
from parley.keyring import fields
from tenants.selectors import tenant_phone_region

# --- the worker ----------------------------------------------------------------------------


def variables_encrypt(run: FlowRun, variables: dict[str, str]) -> bytes:
    return fields.encrypt(
        json.dumps(variables, ensure_ascii=False, separators=(",", ":")),
        schema=connection.schema_name,
        table=RUN_TABLE,
        column="variables",
        pk=run.allocate_pk(),
    )


def variables_of(run: FlowRun) -> dict[str, str]:
    if not run.variables_ct:
        return {}
    raw = fields.decrypt(
        bytes(run.variables_ct),
        schema=connection.schema_name,
        table=RUN_TABLE,
        column="variables",
        pk=run.pk,
    )
    data = json.loads(raw)
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


# A live, enabled flow serves the inbox: both statements below start from it.
_LIVE_FLOW = """
    SELECT 1 FROM bots_flow f JOIN bots_flow_inboxes fi ON fi.flow_id = f.id
    WHERE fi.inbox_id = %(inbox)s AND f.enabled AND f.live_version_id IS NOT NULL
"""
_MAY_TAKE = (
    f"SELECT EXISTS ({_LIVE_FLOW}) OR EXISTS ("  # noqa: S608 - constant fragments, no input
    " SELECT 1 FROM bots_flowrun r"
    " WHERE r.conversation_id = %(conversation)s AND r.ended_at IS NULL)"
)
_GREETING = f"SELECT EXISTS ({_LIVE_FLOW} AND f.trigger = %(trigger)s)"  # noqa: S608


def bot_may_take(*, inbox_id: int, conversation_id: int) -> bool:
    """Whether the engine could act on a message: a live, enabled flow serves the
    inbox, or the conversation has an open run (a flow switched off finishes it)."""
    # This runs for every inbound message of every inbox: one statement, written out
    # (the ORM's UNION of two querysets cost more CPU to build than to run).
    with connection.cursor() as cursor:
        cursor.execute(_MAY_TAKE, {"inbox": inbox_id, "conversation": conversation_id})
        return bool(cursor.fetchone()[0])


def inbox_has_greeting_flow(inbox_id: int) -> bool:
    """The auto-reply veto: a live flow that starts on every new conversation serves the
    inbox, so the bot greets instead of the out-of-hours auto-reply."""
    # Runs for every new conversation of an inbox with an auto-reply: written out,
    # as bot_may_take is.
    with connection.cursor() as cursor:
        cursor.execute(_GREETING, {"inbox": inbox_id, "trigger": Flow.Trigger.NEW_CONVERSATION})
        return bool(cursor.fetchone()[0])


def _human_has_it(conversation: Conversation) -> bool:
    return (
        Message.objects.filter(conversation=conversation, sender=Message.Sender.AGENT).exists()
        or FlowRun.objects.filter(conversation=conversation)
        .exclude(outcome=FlowRun.Outcome.COMPLETED)
        .exists()
    )


def _flow_for(conversation: Conversation, message: Message, text: str) -> Flow | None:
    flows = list(
        Flow.objects.filter(inboxes=conversation.inbox_id, enabled=True, live_version__isnull=False)
        .select_related("live_version")
        .order_by("id")
    )
    if not flows:
        return None
    if conversation.handler == Conversation.Handler.BOT:
        return flows[0]  # handed back to the bot by an agent: the inbox's flow takes it
    first = not Message.objects.filter(
        conversation=conversation, direction=Message.Direction.IN, pk__lt=message.pk
    ).exists()
    human = None
    for flow in flows:
        if flow.trigger == Flow.Trigger.NEW_CONVERSATION:
            if first:
                return flow
            continue
        if human is None:
            human = _human_has_it(conversation)
        if human:
            return None
        if flow.trigger == Flow.Trigger.KEYWORD and nodes.keyword_match(flow.keywords, text):
            return flow
        if flow.trigger == Flow.Trigger.INTENT and flow.trigger_intent:
            model = version_model(flow.live_version, graph_of(flow.live_version))
            if model is not None and model.predict(text).intent == flow.trigger_intent:
                return flow
    return None


def _lock(conversation_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_lock(hashtext(%s))",
            [f"bots:{connection.schema_name}:{conversation_id}"],
        )
        return bool(cursor.fetchone()[0])


def _unlock(conversation_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_unlock(hashtext(%s))",
            [f"bots:{connection.schema_name}:{conversation_id}"],
        )


def run_end_for_human(*, conversation_id: int) -> int:
    """A person took the conversation: its open run ends (outcome ``ended``)."""
    now = timezone.now()
    return FlowRun.objects.filter(conversation_id=conversation_id, ended_at__isnull=True).update(
        outcome=FlowRun.Outcome.ENDED, reason="agent_took_over", ended_at=now, updated_at=now
    )


def messages_waiting(*, older_than_seconds: int = 30, limit: int = 500) -> list[int]:
    """For each open run, its conversation's oldest inbound message the run has not
    seen, older than ``older_than_seconds`` (its enqueue was lost, e.g. the broker was
    down at commit). The engine skips what it has seen, so enqueueing twice is harmless."""
    before = timezone.now() - _dt.timedelta(seconds=older_than_seconds)
    found = []
    runs = FlowRun.objects.filter(ended_at__isnull=True).values_list("conversation_id", "state")[
        :limit
    ]
    for conversation_id, state in runs:
        seen = state.get("last_message", 0) if isinstance(state, dict) else 0
        first = (
            Message.objects.filter(
                conversation_id=conversation_id,
                direction=Message.Direction.IN,
                kind=Message.Kind.MESSAGE,
                pk__gt=seen,
                created_at__lt=before,
            )
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        )
        if first is not None:
            found.append(first)
    return found


def message_process(*, message_id: int) -> str:
    """Run the bot for one inbound message (the Celery task's body). Returns what it did:
    "ignored", "duplicate", "no_flow", "busy" (another worker has the conversation: try
    again), "ended", "waiting" or the run's outcome."""
    message = (
        Message.objects.select_related("conversation__inbox", "conversation__contact")
        .filter(pk=message_id)
        .first()
    )
    if (
        message is None
        or message.direction != Message.Direction.IN
        or message.kind != Message.Kind.MESSAGE
    ):
        return "ignored"
    conversation = message.conversation
    if not _lock(conversation.pk):
        return "busy"
    try:
        return _process(message, conversation)
    finally:
        _unlock(conversation.pk)


def _process(message: Message, conversation: Conversation) -> str:
    conversation.refresh_from_db()
    if conversation.status == Conversation.Status.RESOLVED:
        return "ignored"
    run = (
        FlowRun.objects.select_related("version")
        .filter(conversation=conversation, ended_at__isnull=True)
        .first()
    )
    text = body_of(message)
    if run is not None:
        if conversation.handler != Conversation.Handler.BOT:
            run_end_for_human(conversation_id=conversation.pk)
            return "ended"
        if run.state.get("last_message", 0) >= message.pk:
            return "duplicate"
        node_id, fresh = run.node, True
    else:
        if FlowRun.objects.filter(
            conversation=conversation, state__last_message__gte=message.pk
        ).exists():
            return "duplicate"
        flow = _flow_for(conversation, message, text)
        if flow is None:
            return "no_flow"
        try:
            graph = graph_of(flow.live_version)
        except GraphError:
            return "no_flow"
        starts = graph.starts()
        if not starts:
            return "no_flow"
        now = timezone.now()
        run = FlowRun(
            conversation=conversation,
            version=flow.live_version,
            node=starts[0].id,
            state={},
            started_at=now,
            updated_at=now,
        )
        run.variables_ct = variables_encrypt(run, {})
        try:
            with transaction.atomic():
                run.save(force_insert=True)
                conversations.bot_start(
                    conversation_id=conversation.pk, flow_id=flow.pk, run_id=run.pk
                )
        except IntegrityError:
            return "busy"  # another worker started one at the same moment
        node_id, fresh = run.node, False
    return _walk(run, conversation, message, text, node_id, fresh)


def _context(run: FlowRun, conversation: Conversation, text: str, fresh: bool) -> Context:
    pii = conversations.contact_pii(conversation.contact)
    inbox = conversation.inbox
    ctx = Context(
        variables=variables_of(run),
        state=dict(run.state),
        message=text,
        fresh=fresh,
        contact_name=pii.get("name", ""),
        contact={
            "has_email": bool(pii.get("email")),
            "has_phone": bool(pii.get("phone")),
            "attributes": conversation.contact.attributes or {},
        },
        now=timezone.now(),
        tz=inbox.timezone,
        allowed_hosts=frozenset(AllowedHost.objects.values_list("host", flat=True)),
    )
    graph = graph_of(run.version)
    ctx.intent_scores = intent_scorer(version_model(run.version, graph))

    def articles() -> list[knowledge.Article]:
        rows = KnowledgeArticle.objects.filter(published=True, flagged=False).order_by("id")
        return [knowledge.Article(r.pk, r.title, r.body, tuple(r.tags)) for r in rows[:2000]]

    def kb_answer(question, tags, threshold):
        pool = articles()
        key = (
            connection.schema_name,
            tuple(
                KnowledgeArticle.objects.filter(published=True, flagged=False)
                .order_by("id")
                .values_list("id", "updated_at")
            ),
        )
        return kb_answerer(pool, key)(question, tags, threshold)

    ctx.kb_answer = kb_answer

    def ai_answer(question, tags):
        history = []
        # This conversation's other turns (the question itself goes separately).
        earlier = (
            Message.objects.filter(conversation=conversation, kind=Message.Kind.MESSAGE)
            .exclude(sender=Message.Sender.SYSTEM)
            .exclude(pk=ctx.state.get("last_message"))
            .order_by("-id")[:HISTORY_TURNS]
        )
        roles = {Message.Sender.CONTACT: "customer", Message.Sender.AGENT: "agent"}
        for item in reversed(list(earlier)):
            history.append((roles.get(item.sender, "bot"), body_of(item)))
        pool = [a for a in articles() if not tags or set(tags) & set(a.tags)]
        try:
            region = tenant_phone_region()
        except Exception:  # noqa: BLE001 - a region only sharpens phone detection
            region = None
        return ai.ai_answer(
            question=question,
            history=history,
            articles=pool,
            provider=ai_provider_for_bots(),
            region=region,
        )

    ctx.ai_answer = ai_answer

    def http(method, url, body, timeout):
        try:
            response = outbound.request(
                method, url, json_body=body, timeout=float(timeout), retries=1, purpose="bot flow"
            )
        except outbound.OutboundError:
            raise nodes.HttpFailure from None
        if not 200 <= response.status < 300:
            raise nodes.HttpFailure
        try:
            return validation.json_loads(response.body or b"null")
        except (validation.JSONSyntaxError, ValidationError):
            raise nodes.HttpFailure from None

    ctx.http = http
    ctx.within_business_hours = lambda: conversations.within_business_hours(inbox, ctx.now)
    return ctx


def _flush(ctx: Context, conversation: Conversation, run: FlowRun) -> None:
    for out in ctx.outbox:
        body = out.text.strip()
        if out.buttons:
            body = "\n".join([body, *(f"{i}. {b}" for i, b in enumerate(out.buttons, 1))]).strip()
        attachments = [{"url": out.media_url, "type": "", "size": 0}] if out.media_url else []
        if body or attachments:
            conversations.bot_reply_send(
                conversation_id=conversation.pk,
                body=body[: conversations.MAX_BODY],
                attachments=attachments,
                run_id=run.pk,
            )
    ctx.outbox.clear()


def _save(run: FlowRun, ctx: Context, node_id: str) -> None:
    run.node = node_id
    run.state = ctx.state
    run.variables_ct = variables_encrypt(run, ctx.variables)
    run.updated_at = timezone.now()
    run.save(update_fields=["node", "state", "variables_ct", "steps", "updated_at"])


def _walk(
    run: FlowRun, conversation: Conversation, message: Message, text: str, node_id: str, fresh: bool
) -> str:
    ctx = _context(run, conversation, text, fresh)
    ctx.state["last_message"] = message.pk
    graph = graph_of(run.version)

    def on_step(step, at, node_type, port):
        with transaction.atomic():
            _flush(ctx, conversation, run)
            run.steps += 1
            target = graph.target(at, port) if port and step and not step.wait else None
            _save(run, ctx, target or at)

    walked = advance(graph, ctx, node_id, cap=step_cap(), on_step=on_step)
    if not walked.outcome:
        return "waiting"
    with transaction.atomic():
        _flush(ctx, conversation, run)
        if walked.customer_text:
            conversations.bot_reply_send(
                conversation_id=conversation.pk, body=walked.customer_text, run_id=run.pk
            )
        now = timezone.now()
        run.node, run.outcome, run.reason = walked.node, walked.outcome, walked.reason[:60]
        run.state, run.ended_at, run.updated_at = ctx.state, now, now
        run.variables_ct = variables_encrypt(run, ctx.variables)
        run.save()
        if walked.outcome == FlowRun.Outcome.COMPLETED:
            conversations.bot_finish(conversation_id=conversation.pk, run_id=run.pk)
        else:
            conversations.bot_handoff(
                conversation_id=conversation.pk,
                note=walked.note,
                reason=run.reason,
                inbox_id=walked.inbox,
                run_id=run.pk,
            )
    return walked.outcome
