"""Every change to flows, their versions, knowledge articles and the HTTP allow-list:
checked against the policy table, validated, and audited in the same transaction.

Flows and articles need ``Perm.FLOWS_EDIT`` (marketer, admin, owner); the allow-list
needs ``Perm.CONNECTORS_MANAGE`` (owner, admin, integrator): a flow author must not be
able to open a way out for customer data. Audit details carry ids, numbers and names,
never a graph, an article's body or a customer's message.

A flow always has at most one draft. Publishing validates the draft (``bots.validation``
against the tenant's allow-list), freezes it (a database trigger keeps a published
version's graph as it is), archives the version it replaces and points the flow at it;
the next draft is a copy of the live version, made when someone opens or saves it.
Rolling back publishes a *new* version with an old graph, so history only grows.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, ProtectedError
from django.utils import timezone

from accounts.policy import Perm, require
from audit.context import actor_for_user
from audit.services import record
from bots import engine, selectors, validation
from bots import graph as flow_graph
from bots.guardrails import article_screen
from bots.models import AllowedHost, Flow, FlowVersion, KnowledgeArticle
from bots.tasks import flow_version_train
from conversations.models import Inbox
from parley import outbound
from parley import validation as input_validation
from parley.celery import broker_reachable

logger = logging.getLogger(__name__)

# The graph's hostile-input limits (docs/bots-flows.md): the parser checks the counts.
MAX_GRAPH_BYTES = 64 * 1024
MAX_KEYWORDS = 20
MAX_INBOXES = 200
MAX_TAGS = 20
MAX_SIM_MESSAGES = 30
MAX_SIM_MESSAGE_CHARS = 4000
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TAG_RE = re.compile(r"^[\w][\w .-]{0,39}$")

START_GRAPH: dict[str, Any] = {
    "nodes": [{"id": "start", "type": "start", "x": 40, "y": 80, "config": {}}],
    "edges": [],
}


class FlowError(Exception):
    """A refusal with a stable ``code`` the API answers as JSON (``status`` is the HTTP one)."""

    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None, **extra) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status
        self.extra = extra


class FlowInvalid(FlowError):
    """Publishing refused: the draft has problems (each names its node)."""

    def __init__(self, problems: list[dict]) -> None:
        count = len(problems)
        super().__init__(
            "flow_invalid",
            f"The flow has {count} problem{'s' if count != 1 else ''}: fix them, then publish.",
            problems=problems,
        )
        self.problems = problems


class DraftConflict(FlowError):
    def __init__(self, updated_at: _dt.datetime) -> None:
        super().__init__(
            "draft_conflict",
            "The draft was changed elsewhere since you loaded it: reload it, then save again.",
            status=409,
            updated_at=updated_at.isoformat(),
        )


# --- helpers ---------------------------------------------------------------------------------


def _audit(by, action: str, target_type: str, target_id, **details) -> None:
    record(
        action,
        actor=actor_for_user(by),
        target_type=target_type,
        target_id=target_id,
        details=details or None,
    )


def _text(value, *, field: str, label: str, max_length: int, required: bool = False) -> str:
    return input_validation.clean_text(
        value, field=field, label=label, max_length=max_length, required=required
    )


def _string_list(
    value, *, field: str, label: str, max_items: int, max_length: int, lower: bool = False
) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationError({field: f"{label} is a list of strings."}, code="invalid")
    if len(value) > max_items:
        raise ValidationError({field: f"At most {max_items} {label.lower()}."}, code="invalid")
    out: list[str] = []
    for item in value:
        text = _text(item, field=field, label=label, max_length=max_length, required=True)
        text = text.lower() if lower else text
        if text not in out:
            out.append(text)
    return out


def graph_check(graph) -> dict:
    """The graph as stored, or FlowError: a JSON object of at most 64 KiB that parses."""
    if not isinstance(graph, dict):
        raise FlowError("graph_invalid", "The graph is a JSON object with nodes and edges.")
    try:
        input_validation.document_check(graph)
        size = len(json.dumps(graph, ensure_ascii=False).encode("utf-8"))
    except (ValidationError, TypeError, ValueError, RecursionError):
        raise FlowError("graph_invalid", "The graph holds values JSON cannot store.") from None
    if size > MAX_GRAPH_BYTES:
        raise FlowError(
            "graph_too_large", f"The graph is larger than {MAX_GRAPH_BYTES // 1024} KiB."
        )
    try:
        parsed = flow_graph.parse(graph)
    except flow_graph.GraphError as exc:
        raise FlowError(
            "graph_invalid",
            exc.message,
            problems=[{"node": exc.node, "code": exc.code, "message": exc.message}],
        ) from None
    # Stored as parsed: config cleaned by each node type, positions as numbers.
    return parsed.as_dict()


def _problems(graph: dict) -> list[dict]:
    return [
        p.as_dict()
        for p in validation.validate(graph, allowed_hosts=selectors.allowed_host_names())
    ]


def _has_intents(graph: dict) -> bool:
    return any(isinstance(n, dict) and n.get("type") == "intent" for n in graph.get("nodes") or [])


def _training_for(graph: dict) -> str:
    return FlowVersion.Training.PENDING if _has_intents(graph) else FlowVersion.Training.NONE


def _enqueue_training(version: FlowVersion) -> None:
    if version.training != FlowVersion.Training.PENDING:
        return
    schema, version_id = connection.schema_name, version.pk

    def enqueue() -> None:
        if not broker_reachable():  # publishing to a dead broker blocks for seconds
            logger.warning("could not enqueue training of version %s: no broker", version_id)
            return
        try:
            flow_version_train.delay(schema, version_id)
        except Exception as exc:  # noqa: BLE001 - any broker failure: the version stays pending
            logger.warning(
                "could not enqueue training of version %s: %s", version_id, type(exc).__name__
            )

    transaction.on_commit(enqueue)


# --- flows -----------------------------------------------------------------------------------


_UNSET: Any = object()


def _flow_fields(
    *, name, description, trigger, keywords, trigger_intent, enabled, inboxes
) -> dict[str, Any]:
    """Clean the fields given (``_UNSET`` ones are left out)."""
    out: dict[str, Any] = {}
    if name is not _UNSET:
        out["name"] = _text(name, field="name", label="The name", max_length=80, required=True)
    if description is not _UNSET:
        out["description"] = _text(
            description, field="description", label="The description", max_length=300
        )
    if trigger is not _UNSET:
        if trigger not in Flow.Trigger.values:
            raise ValidationError(
                {"trigger": f"The trigger is one of {', '.join(Flow.Trigger.values)}."},
                code="invalid",
            )
        out["trigger"] = trigger
    if keywords is not _UNSET:
        out["keywords"] = _string_list(
            keywords,
            field="keywords",
            label="Keywords",
            max_items=MAX_KEYWORDS,
            max_length=60,
            lower=True,
        )
    if trigger_intent is not _UNSET:
        intent = _text(
            trigger_intent, field="trigger_intent", label="The trigger intent", max_length=40
        )
        if intent and not NAME_RE.match(intent):
            raise ValidationError(
                {"trigger_intent": "An intent name: a-z, 0-9 and _, starting with a letter."},
                code="invalid",
            )
        out["trigger_intent"] = intent
    if enabled is not _UNSET:
        if not isinstance(enabled, bool):
            raise ValidationError({"enabled": "Enabled is true or false."}, code="invalid")
        out["enabled"] = enabled
    if inboxes is not _UNSET:
        if not isinstance(inboxes, list | tuple) or len(inboxes) > MAX_INBOXES:
            raise ValidationError({"inboxes": "Inboxes is a list of inbox ids."}, code="invalid")
        ids = sorted(
            {input_validation.parse_int(i, field="inboxes", label="An inbox id") for i in inboxes}
        )
        found = set(Inbox.objects.filter(pk__in=ids).values_list("pk", flat=True))
        if found != set(ids):
            raise ValidationError({"inboxes": "An inbox does not exist."}, code="invalid")
        out["inboxes"] = ids
    return out


def _trigger_consistent(flow: Flow) -> None:
    if flow.trigger == Flow.Trigger.KEYWORD and not flow.keywords:
        raise ValidationError(
            {"keywords": "A keyword trigger needs at least one keyword."}, code="invalid"
        )
    if flow.trigger == Flow.Trigger.INTENT and not flow.trigger_intent:
        raise ValidationError(
            {"trigger_intent": "An intent trigger needs the intent's name."}, code="invalid"
        )


def _name_free(name: str, *, exclude: int | None = None) -> None:
    taken = Flow.objects.filter(name__iexact=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise ValidationError({"name": f"A flow named {name!r} exists."}, code="invalid")


def flow_create(
    *,
    by,
    name: str,
    description: str = "",
    inboxes: Sequence[int] = (),
    trigger: str = Flow.Trigger.NEW_CONVERSATION,
    keywords: Sequence[str] = (),
    trigger_intent: str = "",
    enabled: bool = True,
) -> Flow:
    """A new flow with its draft v1 (one start node); ``flow.created``."""
    require(by, Perm.FLOWS_EDIT)
    values = _flow_fields(
        name=name,
        description=description,
        trigger=trigger,
        keywords=list(keywords),
        trigger_intent=trigger_intent,
        enabled=enabled,
        inboxes=list(inboxes),
    )
    inbox_ids = values.pop("inboxes")
    flow = Flow(created_by=by if getattr(by, "pk", None) else None, **values)
    _trigger_consistent(flow)
    _name_free(flow.name)
    try:
        with transaction.atomic():
            flow.save(force_insert=True)
            flow.inboxes.set(inbox_ids)
            draft = FlowVersion.objects.create(
                flow=flow, number=1, graph=START_GRAPH, author=_author(by)
            )
            _audit(by, "flow.created", "flow", flow.pk, name=flow.name, version=draft.pk, number=1)
    except IntegrityError:
        raise ValidationError(
            {"name": f"A flow named {flow.name!r} exists."}, code="invalid"
        ) from None
    return flow


def _author(by):
    return by if getattr(by, "pk", None) and not getattr(by, "is_break_glass", False) else None


def flow_update(
    *,
    by,
    flow: Flow,
    name: str = _UNSET,
    description: str = _UNSET,
    inboxes: Sequence[int] = _UNSET,
    trigger: str = _UNSET,
    keywords: Sequence[str] = _UNSET,
    trigger_intent: str = _UNSET,
    enabled: bool = _UNSET,
) -> Flow:
    """Change the given fields (the graph lives in versions, not here); ``flow.updated``."""
    require(by, Perm.FLOWS_EDIT)
    values = _flow_fields(
        name=name,
        description=description,
        trigger=trigger,
        keywords=list(keywords) if isinstance(keywords, tuple) else keywords,
        trigger_intent=trigger_intent,
        enabled=enabled,
        inboxes=list(inboxes) if isinstance(inboxes, tuple) else inboxes,
    )
    inbox_ids = values.pop("inboxes", None)
    try:
        return _flow_update(by, flow, values, inbox_ids)
    except IntegrityError:
        # Two renames to the same name at once: the unique constraint decides.
        raise ValidationError({"name": "A flow with that name exists."}, code="invalid") from None


def _flow_update(by, flow: Flow, values: dict, inbox_ids: list[int] | None) -> Flow:
    with transaction.atomic():
        flow = Flow.objects.select_for_update().get(pk=flow.pk)
        changed = sorted(k for k, v in values.items() if getattr(flow, k) != v)
        for key, value in values.items():
            setattr(flow, key, value)
        _trigger_consistent(flow)
        if "name" in changed:
            _name_free(flow.name, exclude=flow.pk)
        if inbox_ids is not None and set(inbox_ids) != set(
            flow.inboxes.values_list("pk", flat=True)
        ):
            flow.inboxes.set(inbox_ids)
            changed.append("inboxes")
        if changed:
            flow.save()
            _audit(by, "flow.updated", "flow", flow.pk, name=flow.name, fields=sorted(changed))
    return flow


def flow_delete(*, by, flow: Flow) -> None:
    """Delete a flow and its versions; refused (``flow_in_use``) once it has run."""
    require(by, Perm.FLOWS_EDIT)
    try:
        with transaction.atomic():
            _audit(by, "flow.deleted", "flow", flow.pk, name=flow.name)
            flow.delete()
    except ProtectedError:
        raise FlowError(
            "flow_in_use",
            "Conversations have run this flow, so its history is kept: disable it instead.",
            status=409,
        ) from None


# --- drafts, publishing, rollback ------------------------------------------------------------


def _next_number(flow: Flow) -> int:
    return (flow.versions.aggregate(n=Max("number"))["n"] or 0) + 1


def _locked_draft(by, flow: Flow) -> FlowVersion:
    """The flow's draft, locked; created from the live version when there is none.
    Call inside a transaction that has locked the flow."""
    draft = flow.versions.select_for_update().filter(status=FlowVersion.Status.DRAFT).first()
    if draft is not None:
        return draft
    source = flow.live_version or flow.versions.order_by("-number").first()
    draft = FlowVersion.objects.create(
        flow=flow,
        number=_next_number(flow),
        graph=source.graph if source is not None else START_GRAPH,
        author=_author(by),
    )
    _audit(
        by,
        "flow.draft_created",
        "flow",
        flow.pk,
        version=draft.pk,
        number=draft.number,
        copied_from=source.number if source is not None else None,
    )
    return draft


def draft_get_or_create(*, by, flow: Flow) -> FlowVersion:
    """The flow's draft; after a publish, a new one copied from the live version."""
    require(by, Perm.FLOWS_EDIT, write=False)
    draft = flow.versions.filter(status=FlowVersion.Status.DRAFT).first()
    if draft is not None:
        return draft
    require(by, Perm.FLOWS_EDIT)
    with transaction.atomic():
        Flow.objects.select_for_update().filter(pk=flow.pk).first()
        return _locked_draft(by, flow)


def draft_save(
    *, by, flow: Flow, graph, base_updated_at: _dt.datetime | None = None
) -> tuple[FlowVersion, list[dict]]:
    """Autosave: store the graph even when it has problems (returned), but not one that
    does not parse (FlowError). ``base_updated_at`` older than the draft's → DraftConflict."""
    require(by, Perm.FLOWS_EDIT)
    graph = graph_check(graph)
    with transaction.atomic():
        Flow.objects.select_for_update().filter(pk=flow.pk).first()
        draft = _locked_draft(by, flow)
        if base_updated_at is not None and base_updated_at != draft.updated_at:
            raise DraftConflict(draft.updated_at)
        draft.graph = graph
        draft.author = _author(by) or draft.author
        draft.save(update_fields=["graph", "author", "updated_at"])
        _audit(
            by,
            "flow.draft_saved",
            "flow",
            flow.pk,
            version=draft.pk,
            number=draft.number,
            nodes=len(graph.get("nodes") or []),
        )
    return draft, _problems(graph)


def flow_validate(*, by, flow: Flow, graph=None) -> list[dict]:
    """The problems of ``graph`` (default: the draft, else the live version)."""
    require(by, Perm.FLOWS_EDIT, write=False)
    if graph is None:
        version = selectors.flow_draft(flow) or flow.live_version
        graph = version.graph if version is not None else START_GRAPH
    else:
        graph = graph_check(graph)
    return _problems(graph)


def _archive_published(flow: Flow) -> None:
    """First of a publish or rollback: at most one published version per flow."""
    FlowVersion.objects.filter(flow=flow, status=FlowVersion.Status.PUBLISHED).update(
        status=FlowVersion.Status.ARCHIVED
    )


def _go_live(by, flow: Flow, version: FlowVersion, action: str, **details) -> None:
    """Last of a publish or rollback, in its transaction: the flow points at
    ``version`` (already published), the audit event, training after the commit."""
    flow.live_version = version
    flow.save(update_fields=["live_version", "updated_at"])
    _audit(
        by,
        action,
        "flow",
        flow.pk,
        name=flow.name,
        version=version.pk,
        number=version.number,
        **details,
    )
    _enqueue_training(version)


def flow_publish(*, by, flow: Flow, note: str = "") -> FlowVersion:
    """Publish the draft: FlowInvalid with its problems, or the new live version."""
    require(by, Perm.FLOWS_EDIT)
    note = _text(note, field="note", label="The note", max_length=200)
    with transaction.atomic():
        flow = Flow.objects.select_for_update().get(pk=flow.pk)
        draft = flow.versions.select_for_update().filter(status=FlowVersion.Status.DRAFT).first()
        if draft is None:
            raise FlowError(
                "nothing_to_publish",
                "There is no draft: the live version is the latest. Edit the flow first.",
                status=409,
            )
        problems = _problems(draft.graph)
        if problems:
            raise FlowInvalid(problems)
        _archive_published(flow)
        draft.status = FlowVersion.Status.PUBLISHED
        draft.published_at = timezone.now()
        draft.published_by = _author(by)
        draft.note = note
        draft.training = _training_for(draft.graph)
        draft.save(
            update_fields=[
                "status",
                "published_at",
                "published_by",
                "note",
                "training",
                "updated_at",
            ]
        )
        _go_live(by, flow, draft, "flow.published", training=draft.training)
    return draft


def flow_rollback(*, by, flow: Flow, number: int) -> FlowVersion:
    """Publish a new version with the graph of version ``number`` (history only grows)."""
    require(by, Perm.FLOWS_EDIT)
    with transaction.atomic():
        flow = Flow.objects.select_for_update().get(pk=flow.pk)
        source = selectors.flow_version(flow, number)
        if source.status == FlowVersion.Status.DRAFT:
            raise FlowError(
                "rollback_to_draft", "Roll back to a published or archived version, not the draft."
            )
        problems = _problems(source.graph)
        if problems:
            # E.g. an HTTP host taken off the allow-list since: fail closed.
            raise FlowInvalid(problems)
        top = _next_number(flow)
        draft = flow.versions.select_for_update().filter(status=FlowVersion.Status.DRAFT).first()
        if draft is not None:
            # The new version takes the draft's number and the draft moves up one: it
            # stays the newest. .update() keeps its updated_at, so an editor that has
            # it open can still save.
            FlowVersion.objects.filter(pk=draft.pk).update(number=top)
            top = draft.number
        _archive_published(flow)
        version = FlowVersion.objects.create(
            flow=flow,
            number=top,
            status=FlowVersion.Status.PUBLISHED,
            graph=source.graph,
            note=f"rollback to v{source.number}",
            author=_author(by),
            published_at=timezone.now(),
            published_by=_author(by),
            training=_training_for(source.graph),
        )
        _go_live(by, flow, version, "flow.rolled_back", to_number=source.number)
    return version


# --- simulator -------------------------------------------------------------------------------


def flow_simulate(*, by, flow: Flow, messages, graph=None) -> dict:
    """Run the draft (or ``graph``) against typed messages: nothing is stored, and only
    the tenant's published, unflagged articles and its allow-list are read (never a
    conversation)."""
    require(by, Perm.FLOWS_EDIT, write=False)
    if not isinstance(messages, list | tuple) or len(messages) > MAX_SIM_MESSAGES:
        raise ValidationError(
            {"messages": f"Messages is a list of at most {MAX_SIM_MESSAGES} strings."},
            code="invalid",
        )
    texts = [
        _text(m, field="messages", label="A message", max_length=MAX_SIM_MESSAGE_CHARS)
        for m in messages
    ]
    if graph is None:
        version = selectors.flow_draft(flow) or flow.live_version
        graph = version.graph if version is not None else START_GRAPH
    else:
        graph = graph_check(graph)
    result = engine.simulate(
        graph,
        texts,
        articles=selectors.articles_for_bot(),
        allowed_hosts=selectors.allowed_host_names(),
    )
    return result.as_dict()


# --- knowledge articles ----------------------------------------------------------------------


def _article_fields(*, title, body, tags, published) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if title is not _UNSET:
        out["title"] = _text(title, field="title", label="The title", max_length=200, required=True)
    if body is not _UNSET:
        out["body"] = _text(body, field="body", label="The body", max_length=20000, required=True)
    if tags is not _UNSET:
        tags = _string_list(
            tags, field="tags", label="Tags", max_items=MAX_TAGS, max_length=40, lower=True
        )
        for tag in tags:
            if not TAG_RE.match(tag):
                raise ValidationError(
                    {"tags": "A tag is letters, digits, spaces, '.', '-' or '_'."},
                    code="invalid",
                )
        out["tags"] = tags
    if published is not _UNSET:
        if not isinstance(published, bool):
            raise ValidationError({"published": "Published is true or false."}, code="invalid")
        out["published"] = published
    return out


def _screen(article: KnowledgeArticle) -> None:
    verdict = article_screen(article.title, article.body)
    article.flagged = verdict.blocked
    article.flag_reasons = [r[:40] for r in verdict.reasons][:20]


def article_create(
    *, by, title: str, body: str, tags: Sequence[str] = (), published: bool = True
) -> KnowledgeArticle:
    """A new article, screened for instruction-like text (kept but flagged, never used)."""
    require(by, Perm.FLOWS_EDIT)
    values = _article_fields(title=title, body=body, tags=list(tags), published=published)
    article = KnowledgeArticle(author=_author(by), **values)
    _screen(article)
    with transaction.atomic():
        article.save(force_insert=True)
        _audit(
            by,
            "article.created",
            "knowledge_article",
            article.pk,
            flagged=article.flagged,
            reasons=article.flag_reasons,
        )
    return article


def article_update(
    *,
    by,
    article: KnowledgeArticle,
    title: str = _UNSET,
    body: str = _UNSET,
    tags: Sequence[str] = _UNSET,
    published: bool = _UNSET,
) -> KnowledgeArticle:
    require(by, Perm.FLOWS_EDIT)
    values = _article_fields(
        title=title,
        body=body,
        tags=list(tags) if isinstance(tags, tuple) else tags,
        published=published,
    )
    with transaction.atomic():
        article = KnowledgeArticle.objects.select_for_update().get(pk=article.pk)
        changed = sorted(k for k, v in values.items() if getattr(article, k) != v)
        for key, value in values.items():
            setattr(article, key, value)
        _screen(article)
        article.save()
        _audit(
            by,
            "article.updated",
            "knowledge_article",
            article.pk,
            fields=changed,
            flagged=article.flagged,
            reasons=article.flag_reasons,
        )
    return article


def article_delete(*, by, article: KnowledgeArticle) -> None:
    require(by, Perm.FLOWS_EDIT)
    with transaction.atomic():
        _audit(by, "article.deleted", "knowledge_article", article.pk)
        article.delete()


# --- the allow-list for HTTP-request nodes ---------------------------------------------------


def _private_allowed(address) -> bool:
    if settings.PARLEY_OUTBOUND_ALLOW_PRIVATE:
        return True
    return any(
        address.version == network.version and address in network
        for network in settings.PARLEY_OUTBOUND_ALLOWED_NETWORKS
    )


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def host_normalise(raw) -> str:
    """A host as stored: lower-case IDNA (``xn--``) DNS name or an IP literal; no scheme,
    port, path or user. ``https://Bücher.example/x`` → ``xn--bcher-kva.example``.

    IP literals in private, loopback, link-local or reserved ranges are refused (the
    same rule as ``parley.outbound``, which also vets what a name resolves to at call
    time), unless the deployment allows private destinations (development, tests)."""
    text = _text(raw, field="host", label="The host", max_length=300, required=True)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() not in ("http", "https"):
            raise ValidationError({"host": "Give a host name, e.g. api.example.com."})
        text = re.split(r"[/?#]", rest, maxsplit=1)[0]
    elif re.search(r"[/?#]", text):
        raise ValidationError({"host": "Give the host only, without a path."})
    if "@" in text:
        raise ValidationError({"host": "Give the host only, without a user name."})
    if text.startswith("["):
        literal, _, port = text[1:].partition("]")
        if port:
            raise ValidationError({"host": "Give the host without a port."})
        text = literal
    else:
        if text.count(":") == 1:
            raise ValidationError({"host": "Give the host without a port."})
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is not None:
        reason = outbound.refusal_reason(address)
        if reason and not _private_allowed(address):
            raise ValidationError({"host": f"{text} is {reason}; refused."}, code="host_private")
        return address.compressed
    name = text.rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError({"host": "Not a valid host name."}) from None
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValidationError({"host": "Not a valid host name (e.g. api.example.com)."})
    if labels[-1].isdigit():
        raise ValidationError({"host": "Not a valid host name (e.g. api.example.com)."})
    if name == "localhost" or labels[-1] in ("localhost", "local", "internal", "arpa"):
        raise ValidationError({"host": "Local and internal names are refused."})
    return name


def allowed_host_add(*, by, host: str, note: str = "") -> AllowedHost:
    require(by, Perm.CONNECTORS_MANAGE)
    name = host_normalise(host)
    note = _text(note, field="note", label="The note", max_length=200)
    if AllowedHost.objects.filter(host=name).exists():
        raise ValidationError({"host": f"{name} is on the list already."}, code="invalid")
    try:
        with transaction.atomic():
            entry = AllowedHost.objects.create(host=name, note=note, added_by=_author(by))
            _audit(by, "bot_host.added", "bot_host", entry.pk, host=name)
    except IntegrityError:
        raise ValidationError({"host": f"{name} is on the list already."}) from None
    return entry


def allowed_host_remove(*, by, host: str) -> None:
    """Take a host off the list; flows calling it fail validation from now on."""
    require(by, Perm.CONNECTORS_MANAGE)
    try:
        name = host_normalise(host)
    except ValidationError:
        # A host stored under other rules (a private address allowed in development).
        name = host.strip().lower() if isinstance(host, str) else ""
    with transaction.atomic():
        entry = AllowedHost.objects.select_for_update().filter(host=name).first()
        if entry is None:
            raise FlowError("not_found", "That host is not on the list.", status=404)
        _audit(by, "bot_host.removed", "bot_host", entry.pk, host=entry.host)
        entry.delete()
