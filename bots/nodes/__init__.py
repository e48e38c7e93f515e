"""The node types of a flow: an open registry.

Each type is one ``NodeType``: how its config is checked (``clean``: shape, raising
``GraphError``; ``check``: what publishing needs, as ``Problem`` rows), its ports, the
variables it reads and sets (for the publish dataflow), and its runner. New types (the
CRM's lookup and update) call :func:`register`; the graph parser, publish validation,
the simulator and the engine find them here and change in no other way.

A runner gets the node and a context (``bots.engine.Context``: the run's variables and
state, the customer's message, and the side effects the engine or the simulator
provides) and returns a :class:`Step`. It never touches the database or the network
itself, which is what lets the simulator run the very same code.
"""

from __future__ import annotations

# The built-in types register themselves on import, after the registry.
from bots.nodes import answers, ask, http, logic, messages
from bots.nodes.answers import AI_HANDOFF_TEXT, KB_UNKNOWN_TEXT
from bots.nodes.ask import answer_of
from bots.nodes.http import HttpFailure, url_host
from bots.nodes.messages import https_url_problem
from bots.nodes.registry import (
    REGISTRY,
    NodeError,
    NodeType,
    Step,
    keyword_match,
    node_type,
    register,
    render,
)

__all__ = [
    "AI_HANDOFF_TEXT",
    "KB_UNKNOWN_TEXT",
    "REGISTRY",
    "HttpFailure",
    "NodeError",
    "NodeType",
    "Step",
    "answer_of",
    "answers",
    "ask",
    "http",
    "https_url_problem",
    "keyword_match",
    "logic",
    "messages",
    "node_type",
    "register",
    "render",
    "url_host",
]
