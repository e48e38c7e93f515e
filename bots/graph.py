"""A flow version's graph: parsed from JSON into nodes and edges, hostile input refused.

``parse(obj)`` takes the decoded JSON (``FlowVersion.graph``, an API body) and returns a
:class:`Graph` or raises :class:`GraphError` with a stable code. It checks the shape
only (types, limits, known node types and config keys, text a database can store);
what publishing needs besides (one start, no dangling edge, variables set before they
are read…) is ``bots.validation``: a draft that is half built still saves.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from bots import nodes
from bots.schema import GraphError
from parley.validation import text_problem

__all__ = ["Edge", "Graph", "GraphError", "Node", "parse"]

MAX_NODES = 200
MAX_EDGES = 400
MAX_BYTES = 64 * 1024
MAX_PORT = 80
NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_NODE_KEYS = frozenset({"id", "type", "x", "y", "config"})
_EDGE_KEYS = frozenset({"from", "port", "to"})


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    config: dict
    x: float = 0.0
    y: float = 0.0

    @property
    def kind(self) -> nodes.NodeType:
        return nodes.REGISTRY[self.type]

    def ports(self) -> tuple[str, ...]:
        return self.kind.ports(self.config)


@dataclass(frozen=True)
class Edge:
    source: str
    port: str
    target: str


@dataclass
class Graph:
    nodes: dict[str, Node]
    edges: list[Edge]

    def __post_init__(self) -> None:
        # The first edge of a (node, port) wins; validation reports the others.
        self._next: dict[tuple[str, str], str] = {}
        for edge in self.edges:
            self._next.setdefault((edge.source, edge.port), edge.target)

    def target(self, node_id: str, port: str) -> str | None:
        return self._next.get((node_id, port))

    def starts(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.type == "start"]

    def as_dict(self) -> dict:
        return {
            "nodes": [
                {"id": n.id, "type": n.type, "x": n.x, "y": n.y, "config": n.config}
                for n in self.nodes.values()
            ],
            "edges": [{"from": e.source, "port": e.port, "to": e.target} for e in self.edges],
        }


def _id(value, *, what: str, node: str | None = None) -> str:
    if not isinstance(value, str) or not NODE_ID.fullmatch(value):
        raise GraphError(f"{what}_bad_id", f"A {what} id is 1-64 of A-Z, a-z, 0-9, _ and -.", node)
    return value


def _position(value, node: str) -> float:
    if value is None:
        return 0.0
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or abs(value) > 1_000_000  # before isfinite: a huge int does not fit a float
        or not math.isfinite(value)
    ):
        raise GraphError("node_bad_position", "x and y are numbers within ±1,000,000.", node)
    return float(value)


def _node(item) -> Node:
    if not isinstance(item, dict):
        raise GraphError("node_not_object", "Each node is an object.")
    if any(not isinstance(k, str) or k not in _NODE_KEYS for k in item):
        raise GraphError("node_unknown_key", "A node has only id, type, x, y and config.")
    node_id = _id(item.get("id"), what="node")
    kind = item.get("type")
    node_type = nodes.node_type(kind) if isinstance(kind, str) else None
    if node_type is None:
        raise GraphError("node_unknown_type", "Unknown node type.", node_id)
    config = node_type.clean(item.get("config"), node_id)
    return Node(
        id=node_id,
        type=kind,
        config=config,
        x=_position(item.get("x"), node_id),
        y=_position(item.get("y"), node_id),
    )


def _edge(item) -> Edge:
    if not isinstance(item, dict):
        raise GraphError("edge_not_object", "Each edge is an object.")
    if any(not isinstance(k, str) or k not in _EDGE_KEYS for k in item):
        raise GraphError("edge_unknown_key", "An edge has only from, port and to.")
    source = _id(item.get("from"), what="edge")
    target = _id(item.get("to"), what="edge")
    port = item.get("port")
    if not isinstance(port, str) or not 0 < len(port) <= MAX_PORT or text_problem(port):
        raise GraphError("edge_bad_port", "An edge's port is a short string.", source)
    if not port.isascii() or not port.isprintable():
        raise GraphError("edge_bad_port", "An edge's port is a short string.", source)
    return Edge(source=source, port=port, target=target)


def parse(obj) -> Graph:
    """The graph in ``obj`` (decoded JSON), or GraphError. Never anything else."""
    if not isinstance(obj, dict):
        raise GraphError("graph_not_object", "The graph is an object with nodes and edges.")
    if any(not isinstance(k, str) or k not in ("nodes", "edges") for k in obj):
        raise GraphError("graph_unknown_key", "The graph has only nodes and edges.")
    raw_nodes = obj.get("nodes", [])
    raw_edges = obj.get("edges", [])
    if not isinstance(raw_nodes, list) or not isinstance(raw_edges, list):
        raise GraphError("graph_bad_shape", "nodes and edges are lists.")
    if len(raw_nodes) > MAX_NODES:
        raise GraphError("graph_too_many_nodes", f"At most {MAX_NODES} nodes.")
    if len(raw_edges) > MAX_EDGES:
        raise GraphError("graph_too_many_edges", f"At most {MAX_EDGES} edges.")
    parsed: dict[str, Node] = {}
    for item in raw_nodes:
        node = _node(item)
        if node.id in parsed:
            raise GraphError("node_duplicate_id", "Two nodes share an id.", node.id)
        parsed[node.id] = node
    edges = [_edge(item) for item in raw_edges]
    graph = Graph(nodes=parsed, edges=edges)
    # Measured on the cleaned form (bounded in depth by now, so dumping is safe).
    size = len(json.dumps(graph.as_dict(), ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise GraphError(
            "graph_too_large", f"The graph is at most {MAX_BYTES // 1024} KiB of JSON."
        )
    return graph
