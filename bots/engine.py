"""The flow engine: the walk through a graph, in the worker and in the simulator.

:func:`advance` is the whole walk: from a node, run node after node (each type's runner
in ``bots.nodes``) until one waits for the customer (an ask), the run ends (an end, a
handoff, a port with no edge) or the step cap is reached. It is deterministic: the same
graph, variables and messages give the same path. What a node needs from the world
(sending, the intent model, the knowledge base, the AI answer, HTTP, the clock) comes
from the :class:`Context`, so the worker (:func:`message_process`, in ``bots.worker``'s
place: below) and the simulator (:func:`simulate`) run exactly the same runners.

In the worker, once per inbound message of a conversation (``bots.tasks``):

* an open run of the conversation goes on, on the version it started on; with none,
  a flow serving the inbox (enabled, with a live version) whose trigger matches starts
  a run on its live version;
* the run (``FlowRun``) is saved after every step, with what the step sent, in one
  transaction; variables are encrypted, bound to the row;
* at most ``BOTS_STEP_CAP`` steps per message (a loop), then a handoff ``step_cap``;
  a node that fails hands off with its reason (outcome ``failed``);
* a conversation a person took over ends the run (outcome ``ended``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from bots import ai, knowledge, nlu, nodes
from bots.graph import Graph, GraphError, parse
from bots.models import AllowedHost, Flow, FlowRun, FlowVersion, KnowledgeArticle
from connectors.ai.selectors import ai_provider_for_bots
from conversations import services as conversations
from conversations.models import Conversation, Message
from conversations.selectors import body_of
from parley import outbound, validation
from parley.keyring import fields
from tenants.selectors import tenant_phone_region

logger = logging.getLogger(__name__)

RUN_TABLE = "bots_flowrun"
DEFAULT_STEP_CAP = 25
MAX_VARIABLE_CHARS = 1000
MAX_SEND_CHARS = 4000
HISTORY_TURNS = 20


def step_cap() -> int:
    return int(getattr(settings, "BOTS_STEP_CAP", DEFAULT_STEP_CAP))


# --- the walk ------------------------------------------------------------------------------


@dataclass
class Outgoing:
    text: str
    buttons: list[str] = field(default_factory=list)
    media_url: str = ""


@dataclass
class Context:
    """What a runner sees: the run's data, the customer's message, and the world."""

    variables: dict[str, str]
    state: dict
    message: str = ""
    fresh: bool = False  # the message has not been taken by an ask yet
    contact_name: str = ""
    contact: dict = field(default_factory=dict)  # has_email, has_phone, attributes
    now: _dt.datetime | None = None
    tz: str = "UTC"
    allowed_hosts: frozenset[str] = frozenset()
    default_intent_threshold: float = nlu.DEFAULT_THRESHOLD
    outbox: list[Outgoing] = field(default_factory=list)
    # The world, provided by the worker or the simulator:
    intent_scores: Callable[[str], dict[str, float]] = lambda text: {}
    kb_answer: Callable[..., str | None] = lambda question, tags, threshold: None
    ai_answer: Callable[..., ai.AiResult] = None  # type: ignore[assignment]
    http: Callable[..., object] = None  # type: ignore[assignment]
    within_business_hours: Callable[[], bool] = lambda: True

    def lookup(self, name: str) -> str:
        if name == "message":
            return self.message
        if name == "contact.name":
            return self.contact_name
        if name == "intent":
            return self.state.get("intent", "")
        if name == "now":
            return self.local_now().isoformat(timespec="minutes")
        return self.variables.get(name, "")

    def local_now(self) -> _dt.datetime:
        now = self.now or timezone.now()
        try:
            return now.astimezone(ZoneInfo(self.tz or "UTC"))
        except Exception:  # noqa: BLE001 - an unknown zone counts as UTC
            return now.astimezone(_dt.UTC)

    def contact_field(self, name: str) -> str:
        if name == "name":
            return self.contact_name
        if name in ("has_email", "has_phone"):
            return "true" if self.contact.get(name) else "false"
        if name.startswith("attributes."):
            value = (self.contact.get("attributes") or {}).get(name.split(".", 1)[1], "")
            return value if isinstance(value, str) else json.dumps(value)[:MAX_VARIABLE_CHARS]
        return ""

    def send(self, text: str, *, buttons: Sequence[str] = (), media_url: str = "") -> None:
        self.outbox.append(Outgoing(text=text, buttons=list(buttons), media_url=media_url))

    def take_message(self) -> bool:
        """An ask takes the customer's message as its answer, once."""
        if not self.fresh:
            return False
        self.fresh = False
        return True


@dataclass
class Walked:
    """Where a walk stopped: ``outcome`` "" (waiting on ``node``) or a FlowRun outcome."""

    node: str
    outcome: str = ""
    reason: str = ""
    note: str = ""
    inbox: int | None = None
    customer_text: str = ""  # said before a handoff (e.g. "I'm not sure…")
    steps: int = 0


def _clip_variables(variables: dict[str, str]) -> None:
    for name, value in list(variables.items()):
        if not isinstance(value, str):
            value = str(value)
        variables[name] = value[:MAX_VARIABLE_CHARS]


def advance(
    graph: Graph,
    ctx: Context,
    node_id: str,
    *,
    cap: int,
    on_step: Callable[[nodes.Step | None, str, str, str | None], None] = lambda *a: None,
) -> Walked:
    """Walk from ``node_id`` until a wait, an end or ``cap`` steps.

    ``on_step(step, node_id, node_type, port)`` after every step (the worker saves the
    run and what the step sent there).
    """
    steps = 0
    while True:
        if steps >= cap:
            return Walked(
                node=node_id, outcome=FlowRun.Outcome.STEP_CAP, reason="step_cap", steps=steps
            )
        node = graph.nodes.get(node_id)
        if node is None:
            return Walked(
                node=node_id, outcome=FlowRun.Outcome.FAILED, reason="node_missing", steps=steps
            )
        try:
            step = node.kind.run(ctx, node)
        except nodes.NodeError as exc:
            steps += 1
            on_step(None, node.id, node.type, None)
            return Walked(
                node=node.id, outcome=FlowRun.Outcome.FAILED, reason=exc.code, steps=steps
            )
        except Exception as exc:  # noqa: BLE001 - any runner failure hands off, by type only
            logger.warning("bot node %s failed: %s", node.type, type(exc).__name__)
            steps += 1
            on_step(None, node.id, node.type, None)
            return Walked(
                node=node.id,
                outcome=FlowRun.Outcome.FAILED,
                reason=f"{node.type}_failed",
                steps=steps,
            )
        steps += 1
        _clip_variables(ctx.variables)
        on_step(step, node.id, node.type, step.port)
        if step.wait:
            return Walked(node=node.id, steps=steps)
        if step.end == "completed":
            return Walked(
                node=node.id, outcome=FlowRun.Outcome.COMPLETED, reason=step.reason, steps=steps
            )
        if step.end == "handoff":
            return Walked(
                node=node.id,
                outcome=FlowRun.Outcome.HANDOFF,
                reason=step.reason,
                note=step.note,
                inbox=step.inbox,
                steps=steps,
            )
        target = graph.target(node.id, step.port or "")
        if target is None:
            unconnected = node.kind.unconnected.get(step.port or "")
            if unconnected is None:
                return Walked(
                    node=node.id, outcome=FlowRun.Outcome.COMPLETED, reason="no_edge", steps=steps
                )
            reason, text = unconnected
            return Walked(
                node=node.id,
                outcome=FlowRun.Outcome.HANDOFF,
                reason=step.reason or reason,
                customer_text=text,
                steps=steps,
            )
        node_id = target


# --- the intent model and the knowledge base -----------------------------------------------


def version_intents(graph: Graph) -> dict[str, list[str]]:
    """Every intent of the graph's routers with its examples (one name: examples merged)."""
    intents: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        if node.type != "intent":
            continue
        for intent in node.config["intents"]:
            examples = [e for e in intent["examples"] if e.strip()]
            if intent["name"] and examples:
                merged = intents.setdefault(intent["name"], [])
                merged.extend(e for e in examples if e not in merged)
    return intents


class _Cache:
    """A small per-process LRU (published versions never change, so their parts never do)."""

    def __init__(self, size: int) -> None:
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key, make):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_models = _Cache(32)
_graphs = _Cache(64)
_indexes = _Cache(16)


def _scores(model: nlu.IntentModel | None) -> Callable[[str], dict[str, float]]:
    if model is None:
        return lambda text: {}
    return lambda text: model.predict(text).scores


def _trained(intents: dict[str, list[str]]) -> nlu.IntentModel | None:
    if not intents:
        return None
    try:
        return nlu.IntentModel.train(intents)
    except nlu.NLUError:
        return None


def version_model(version: FlowVersion, graph: Graph) -> nlu.IntentModel | None:
    """The version's intent model: trained at publish (``bots.training``), or trained
    here from the graph when the worker has not got to it yet (same data, same model)."""

    def make():
        if version.training == FlowVersion.Training.READY and version.intent_model:
            try:
                return nlu.IntentModel.from_bytes(bytes(version.intent_model))
            except nlu.NLUError:
                logger.warning("flow version %s: stored intent model unusable", version.pk)
        return _trained(version_intents(graph))

    return _models.get(("version", version.pk), make)


def _kb(articles: list[knowledge.Article], key) -> Callable[..., str | None]:
    def answer(question: str, tags: list[str], threshold: float | None) -> str | None:
        chosen = [a for a in articles if not tags or set(tags) & set(a.tags)]
        if not chosen:
            return None
        limit = knowledge.DEFAULT_THRESHOLD if threshold is None else max(threshold, 1e-6)
        index = _indexes.get(
            (key, tuple(sorted(tags)), limit),
            lambda: knowledge.KnowledgeIndex.build(chosen, threshold=limit),
        )
        found = index.answer(question)
        if not found.known:
            return None
        article = next(a for a in chosen if a.id == found.article_id)
        return f"{article.title}\n\n{article.body}"[:MAX_SEND_CHARS]

    return answer


# --- the simulator -------------------------------------------------------------------------


@dataclass
class Simulation:
    transcript: list[dict] = field(default_factory=list)
    path: list[dict] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    outcome: str = ""
    reason: str = ""

    def as_dict(self) -> dict:
        return {
            "transcript": self.transcript,
            "path": self.path,
            "variables": self.variables,
            "outcome": self.outcome or "waiting",
            "reason": self.reason,
        }


def _bot_lines(outbox: list[Outgoing]) -> list[dict]:
    lines = []
    for out in outbox:
        text = out.text if not out.media_url else f"{out.text}\n{out.media_url}".strip()
        lines.append({"from": "bot", "text": text, "buttons": list(out.buttons)})
    outbox.clear()
    return lines


def simulate(
    graph: dict,
    messages: list[str],
    *,
    articles: Sequence[knowledge.Article] = (),
    allowed_hosts: Iterable[str] = (),
    contact_name: str = "",
    now=None,
) -> Simulation:
    """Run ``graph`` against ``messages`` in memory: the engine's runners, no database
    writes, no network (an HTTP node is not called: it takes ``ok`` with empty values,
    said in the transcript; the AI node answers from ``articles`` as with no provider)."""
    parsed = parse(graph)
    sim = Simulation()
    ctx = Context(
        variables={},
        state={},
        contact_name=contact_name,
        now=now or timezone.now(),
        allowed_hosts=frozenset(h.lower() for h in allowed_hosts if isinstance(h, str)),
    )
    model = _models.get(
        ("graph", json.dumps(version_intents(parsed), sort_keys=True)),
        lambda: _trained(version_intents(parsed)),
    )
    ctx.intent_scores = _scores(model)
    pool = list(articles)
    ctx.kb_answer = _kb(pool, ("sim", tuple((a.id, a.title, a.body, a.tags) for a in pool)))

    def history() -> list[tuple[str, str]]:
        return [
            ("customer" if line["from"] == "customer" else "bot", line["text"])
            for line in sim.transcript
            if line["from"] in ("customer", "bot")
        ][-HISTORY_TURNS:]

    ctx.ai_answer = lambda question, tags: ai.ai_answer(
        question=question,
        history=history()[:-1],
        articles=[a for a in pool if not tags or set(tags) & set(a.tags)],
        provider=None,
    )

    def http(method, url, body, timeout):
        sim.transcript.append(
            {
                "from": "system",
                "text": f"HTTP {method} {nodes.url_host(url)}: not called in the simulator.",
                "buttons": [],
            }
        )
        return {}

    ctx.http = http

    def on_step(step, node_id, node_type, port):
        sim.transcript.extend(_bot_lines(ctx.outbox))
        sim.path.append({"node": node_id, "type": node_type, "port": port})

    starts = parsed.starts()
    if not starts:
        sim.outcome, sim.reason = FlowRun.Outcome.FAILED, "no_start"
        return sim
    node_id = starts[0].id
    cap = step_cap()
    for index, message in enumerate(messages[:50]):
        text = message if isinstance(message, str) else ""
        if validation.text_problem(text):
            text = ""
        text = text[:1000]
        sim.transcript.append({"from": "customer", "text": text, "buttons": []})
        ctx.message, ctx.fresh = text, index > 0
        walked = advance(parsed, ctx, node_id, cap=cap, on_step=on_step)
        node_id = walked.node
        if walked.outcome:
            _finish_simulation(sim, walked)
            break
    sim.variables = dict(ctx.variables)
    return sim


def _finish_simulation(sim: Simulation, walked: Walked) -> None:
    sim.outcome, sim.reason = walked.outcome, walked.reason
    if walked.customer_text:
        sim.transcript.append({"from": "bot", "text": walked.customer_text, "buttons": []})
    if walked.outcome == FlowRun.Outcome.COMPLETED:
        text = "The flow ended."
    else:
        text = f"Handed to a person ({walked.reason})."
        if walked.note:
            text += f" Note: {walked.note}"
    sim.transcript.append({"from": "system", "text": text, "buttons": []})


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


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def keyword_match(keywords: Iterable[str], text: str) -> bool:
    """A keyword as a whole word (or phrase), case- and accent-insensitively."""
    folded = _fold(text)
    for keyword in keywords:
        word = _fold(keyword).strip()
        if word and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", folded):
            return True
    return False


def _graph_of(version: FlowVersion) -> Graph:
    return _graphs.get(("version", version.pk), lambda: parse(version.graph))


def inbox_has_greeting_flow(inbox_id: int) -> bool:
    """The auto-reply veto: a live flow that starts on every new conversation serves the
    inbox, so the bot greets instead of the out-of-hours auto-reply."""
    return Flow.objects.filter(
        inboxes=inbox_id,
        enabled=True,
        live_version__isnull=False,
        trigger=Flow.Trigger.NEW_CONVERSATION,
    ).exists()


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
        if flow.trigger == Flow.Trigger.KEYWORD and keyword_match(flow.keywords, text):
            return flow
        if flow.trigger == Flow.Trigger.INTENT and flow.trigger_intent:
            model = version_model(flow.live_version, _graph_of(flow.live_version))
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
            graph = _graph_of(flow.live_version)
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
    graph = _graph_of(run.version)
    ctx.intent_scores = _scores(version_model(run.version, graph))

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
        return _kb(pool, key)(question, tags, threshold)

    ctx.kb_answer = kb_answer

    def ai_answer(question, tags):
        history = []
        earlier = (
            Message.objects.filter(conversation=conversation, kind=Message.Kind.MESSAGE)
            .exclude(sender=Message.Sender.SYSTEM)
            .order_by("-id")[: HISTORY_TURNS + 1]
        )
        for item in reversed(list(earlier)):
            role = "customer" if item.direction == Message.Direction.IN else "bot"
            history.append((role, body_of(item)))
        pool = [a for a in articles() if not tags or set(tags) & set(a.tags)]
        try:
            region = tenant_phone_region()
        except Exception:  # noqa: BLE001 - a region only sharpens phone detection
            region = None
        return ai.ai_answer(
            question=question,
            history=history[:-1],
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
    graph = _graph_of(run.version)

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
