"""Publish validation: every reason a graph cannot go live, each on its node.

``validate(graph, allowed_hosts=...)`` returns a list of :class:`Problem` (empty: the
graph may be published). The rules (docs/bots-flows.md, "Publish validation"): the
graph parses; exactly one start; no edge from or to a missing node or port, one edge
per (node, port); no unreachable node; every ask has a way on; every node's own
settings (an intent's examples, an HTTP host on the allow-list, a pattern that
compiles…); and every variable read is set on every path that reaches the read.

The last one is a must-be-set dataflow: a node's "surely set" variables are the
intersection, over every edge that enters it, of what the node at the edge's tail
surely set when it left by that port. An ask sets its variable only when it leaves
by ``next`` (not ``fallback``), an HTTP request maps its answer only on ``ok``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from bots import graph as graphs
from bots import schema
from bots.schema import GraphError, Problem

__all__ = ["Problem", "validate"]


def _hosts(allowed_hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in allowed_hosts if isinstance(h, str))


def _structure(graph: graphs.Graph) -> list[Problem]:
    problems: list[Problem] = []
    starts = graph.starts()
    if not starts:
        problems.append(Problem(None, "no_start", "The flow needs a start node."))
    for extra in starts[1:]:
        problems.append(Problem(extra.id, "extra_start", "A flow has exactly one start node."))
    seen: set[tuple[str, str]] = set()
    for edge in graph.edges:
        source = graph.nodes.get(edge.source)
        target = graph.nodes.get(edge.target)
        if source is None:
            problems.append(
                Problem(
                    edge.target if target else None,
                    "edge_from_missing_node",
                    "An edge comes from a node that does not exist.",
                )
            )
            continue
        if target is None:
            problems.append(
                Problem(
                    source.id, "edge_to_missing_node", "An edge goes to a node that does not exist."
                )
            )
        if edge.port not in source.ports():
            problems.append(
                Problem(source.id, "edge_bad_port", f"This node has no port {edge.port[:40]}.")
            )
        elif (edge.source, edge.port) in seen:
            problems.append(
                Problem(source.id, "edge_duplicate", f"Port {edge.port[:40]} has two edges.")
            )
        seen.add((edge.source, edge.port))
        if target is not None and target.type == "start":
            problems.append(Problem(source.id, "edge_into_start", "No edge may enter the start."))
    return problems


def _successors(graph: graphs.Graph) -> dict[str, list[tuple[str, str]]]:
    """node -> [(port, target)] over edges whose port and target exist (first per port)."""
    out: dict[str, list[tuple[str, str]]] = {node_id: [] for node_id in graph.nodes}
    for node in graph.nodes.values():
        for port in node.ports():
            target = graph.target(node.id, port)
            if target in graph.nodes:
                out[node.id].append((port, target))
    return out


def _reachable(graph: graphs.Graph, succ, start: str) -> set[str]:
    seen, queue = {start}, deque([start])
    while queue:
        for _, target in succ[queue.popleft()]:
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _surely_set(graph: graphs.Graph, succ, start: str, reachable: set[str]) -> dict[str, set]:
    """For each reachable node: the variables set on every path from the start to it."""
    universe: set[str] = set()
    for node_id in reachable:
        node = graph.nodes[node_id]
        universe.update(node.kind.writes(node.config))
    entering: dict[str, set[str]] = {n: set(universe) for n in reachable}
    entering[start] = set()
    queue, queued = deque(reachable), set(reachable)
    while queue:
        node_id = queue.popleft()
        queued.discard(node_id)
        node = graph.nodes[node_id]
        writes = set(node.kind.writes(node.config))
        on = node.kind.writes_on
        for port, target in succ[node_id]:
            leaving = entering[node_id] | writes if on is None or port in on else entering[node_id]
            narrowed = entering[target] & leaving if target != start else set()
            if narrowed != entering[target]:
                entering[target] = narrowed
                if target not in queued:
                    queue.append(target)
                    queued.add(target)
    return entering


def _variables(graph: graphs.Graph, succ, start: str | None, reachable: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    entering = _surely_set(graph, succ, start, reachable) if start else {}
    for node in graph.nodes.values():
        reported: set[str] = set()
        for name in node.kind.reads(node.config):
            if name in reported:
                continue
            reported.add(name)
            if not schema.readable(name):
                problems.append(
                    Problem(
                        node.id,
                        "variable_bad_name",
                        "A {{variable}} name is a-z, 0-9 and _ (or contact.name, message, "
                        "intent, now).",
                    )
                )
            elif (
                name not in schema.BUILTIN_VARIABLES
                and node.id in entering
                and name not in entering[node.id]
            ):
                problems.append(
                    Problem(
                        node.id,
                        "variable_unset",
                        f"{{{{{name}}}}} may be read before it is set on some path.",
                    )
                )
    return problems


def validate(graph: dict, *, allowed_hosts: Iterable[str]) -> list[Problem]:
    """Every problem that keeps ``graph`` (decoded JSON) from being published."""
    try:
        parsed = graphs.parse(graph)
    except GraphError as exc:
        return [Problem(exc.node, exc.code, exc.message)]
    hosts = _hosts(allowed_hosts)
    problems = _structure(parsed)
    succ = _successors(parsed)
    starts = parsed.starts()
    start = starts[0].id if starts else None
    reachable = _reachable(parsed, succ, start) if start else set()
    for node in parsed.nodes.values():
        if start and node.id not in reachable:
            problems.append(
                Problem(node.id, "unreachable", "No path from the start reaches this node.")
            )
        if node.type == "ask" and parsed.target(node.id, "next") not in parsed.nodes:
            problems.append(
                Problem(node.id, "ask_no_next", "Connect where the flow goes after a valid answer.")
            )
        problems.extend(node.kind.check(node, hosts))
    problems.extend(_variables(parsed, succ, start, reachable))
    return problems
