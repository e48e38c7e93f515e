"""Reads of flows, versions, articles and the allow-list, and the diff between versions.

Flows and articles are tenant-wide (the schema is the tenant); who may read them is
``Perm.FLOWS_EDIT``, checked here so that a view cannot forget it. Nothing here reads
a conversation or a contact.
"""

from __future__ import annotations

from django.db.models import Prefetch, Q
from django.http import Http404

from accounts.policy import Perm, require
from bots import knowledge
from bots.models import AllowedHost, Flow, FlowVersion, KnowledgeArticle
from conversations.models import Inbox

MAX_QUERY = 200


# --- flows and versions ----------------------------------------------------------------------


def flow_list(*, by):
    require(by, Perm.FLOWS_EDIT, write=False)
    drafts = FlowVersion.objects.filter(status=FlowVersion.Status.DRAFT).only(
        "id", "flow_id", "number", "updated_at"
    )
    return (
        Flow.objects.select_related("live_version")
        .defer("live_version__graph", "live_version__intent_model")
        .prefetch_related("inboxes", Prefetch("versions", queryset=drafts, to_attr="drafts"))
        .order_by("name", "id")
    )


def flow_get(*, by, flow_id: int) -> Flow:
    """The flow, or 404 (ids past 64 bits included)."""
    require(by, Perm.FLOWS_EDIT, write=False)
    if not isinstance(flow_id, int) or not 0 < flow_id < 2**63:
        raise Http404
    flow = flow_list(by=by).filter(pk=flow_id).first()
    if flow is None:
        raise Http404
    return flow


def flow_draft(flow: Flow) -> FlowVersion | None:
    return flow.versions.filter(status=FlowVersion.Status.DRAFT).first()


def flow_versions(flow: Flow):
    """Newest first, without the graphs."""
    return (
        flow.versions.defer("graph", "intent_model")
        .select_related("author", "published_by")
        .order_by("-number")
    )


def flow_version(flow: Flow, number: int) -> FlowVersion:
    if not isinstance(number, int) or not 0 < number < 2**31:
        raise Http404
    version = flow.versions.defer("intent_model").filter(number=number).first()
    if version is None:
        raise Http404
    return version


# --- the diff --------------------------------------------------------------------------------


def _nodes(graph: dict) -> dict[str, dict]:
    out = {}
    for node in graph.get("nodes") or []:
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            out[node["id"]] = node
    return out


def _edges(graph: dict) -> list[dict]:
    out = []
    for edge in graph.get("edges") or []:
        if isinstance(edge, dict):
            out.append({"from": edge.get("from"), "port": edge.get("port"), "to": edge.get("to")})
    return out


def _edge_key(edge: dict) -> tuple:
    return (str(edge["from"]), str(edge["port"]), str(edge["to"]))


def graph_diff(old: dict, new: dict) -> dict:
    """What changed from ``old`` to ``new``, readable: nodes added, removed or changed
    (which config keys, its type, or only moved on the canvas), edges added and removed."""
    before, after = _nodes(old or {}), _nodes(new or {})
    changes: list[dict] = []
    for node_id in sorted(after.keys() - before.keys()):
        node = after[node_id]
        changes.append(
            {"kind": "added", "node": node_id, "type": node.get("type"), "detail": "added"}
        )
    for node_id in sorted(before.keys() - after.keys()):
        node = before[node_id]
        changes.append(
            {"kind": "removed", "node": node_id, "type": node.get("type"), "detail": "removed"}
        )
    for node_id in sorted(before.keys() & after.keys()):
        a, b = before[node_id], after[node_id]
        details = []
        if a.get("type") != b.get("type"):
            details.append(f"type {a.get('type')} → {b.get('type')}")
        ca = a.get("config") if isinstance(a.get("config"), dict) else {}
        cb = b.get("config") if isinstance(b.get("config"), dict) else {}
        keys = sorted(k for k in ca.keys() | cb.keys() if ca.get(k) != cb.get(k))
        if keys:
            details.append("changed " + ", ".join(keys))
        if (a.get("x"), a.get("y")) != (b.get("x"), b.get("y")) and not details:
            details.append("moved")
        if details:
            changes.append(
                {
                    "kind": "changed",
                    "node": node_id,
                    "type": b.get("type"),
                    "detail": "; ".join(details),
                    "keys": keys,
                }
            )
    old_edges = {_edge_key(e): e for e in _edges(old or {})}
    new_edges = {_edge_key(e): e for e in _edges(new or {})}
    return {
        "changes": changes,
        "edges_added": [new_edges[k] for k in sorted(new_edges.keys() - old_edges.keys())],
        "edges_removed": [old_edges[k] for k in sorted(old_edges.keys() - new_edges.keys())],
    }


# --- knowledge articles ----------------------------------------------------------------------


def article_list(*, by, query: str = ""):
    """Articles, optionally those whose title, body or tags contain ``query``."""
    require(by, Perm.FLOWS_EDIT, write=False)
    rows = KnowledgeArticle.objects.order_by("title", "id")
    query = (query or "").strip()[:MAX_QUERY]
    if query:
        rows = rows.filter(
            Q(title__icontains=query) | Q(body__icontains=query) | Q(tags__contains=[query.lower()])
        )
    return rows


def article_get(*, by, article_id: int) -> KnowledgeArticle:
    require(by, Perm.FLOWS_EDIT, write=False)
    if not isinstance(article_id, int) or not 0 < article_id < 2**63:
        raise Http404
    article = KnowledgeArticle.objects.filter(pk=article_id).first()
    if article is None:
        raise Http404
    return article


def articles_for_bot() -> list[knowledge.Article]:
    """What a bot may draw on: published articles the screen did not flag."""
    return [
        knowledge.Article(id=a.pk, title=a.title, body=a.body, tags=tuple(a.tags))
        for a in KnowledgeArticle.objects.filter(published=True, flagged=False).order_by("id")
    ]


# --- the allow-list --------------------------------------------------------------------------


def allowed_host_list(*, by):
    require(by, Perm.CONNECTORS_MANAGE, write=False)
    return AllowedHost.objects.select_related("added_by").order_by("host")


def allowed_host_names() -> list[str]:
    return list(AllowedHost.objects.order_by("host").values_list("host", flat=True))


# --- the flow editor's choices ---------------------------------------------------------------


def flow_inbox_choices(*, by) -> list[dict]:
    """Every inbox's id and name (a flow's inboxes, a handoff's target): nothing else of it."""
    require(by, Perm.FLOWS_EDIT, write=False)
    return list(Inbox.objects.order_by("name").values("id", "name"))
