"""The walk through a graph, shared by the worker and the simulator (see bots.engine)."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from bots import ai, knowledge, nlu, nodes
from bots.graph import Graph, parse
from bots.models import FlowRun, FlowVersion

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


def intent_scorer(model: nlu.IntentModel | None) -> Callable[[str], dict[str, float]]:
    if model is None:
        return lambda text: {}
    return lambda text: model.predict(text).scores


def intents_train(intents: dict[str, list[str]]) -> nlu.IntentModel | None:
    if not intents:
        return None
    try:
        return nlu.IntentModel.train(intents)
    except nlu.NLUError:
        return None


def graph_of(version: FlowVersion) -> Graph:
    """A published version's parsed graph (immutable, so cached per process)."""
    return _graphs.get(("version", version.pk), lambda: parse(version.graph))


def graph_model(graph: Graph) -> nlu.IntentModel | None:
    """The intent model of a graph that is not stored yet (the simulator's draft)."""
    intents = version_intents(graph)
    return _models.get(
        ("graph", json.dumps(intents, sort_keys=True)), lambda: intents_train(intents)
    )


def version_model(version: FlowVersion, graph: Graph) -> nlu.IntentModel | None:
    """The version's intent model: trained at publish (``bots.training``), or trained
    here from the graph when the worker has not got to it yet (same data, same model)."""

    def make():
        if version.training == FlowVersion.Training.READY and version.intent_model:
            try:
                return nlu.IntentModel.from_bytes(bytes(version.intent_model))
            except nlu.NLUError:
                logger.warning("flow version %s: stored intent model unusable", version.pk)
        return intents_train(version_intents(graph))

    return _models.get(("version", version.pk), make)


def kb_answerer(articles: list[knowledge.Article], key) -> Callable[..., str | None]:
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


def caches_clear() -> None:
    """Forget every cached model, graph and index (tests; a process never needs it)."""
    for cache in (_models, _graphs, _indexes):
        cache.clear()
