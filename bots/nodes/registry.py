"""The node registry: the ``NodeType`` contract, ``register``, and the runners' helpers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bots import schema
from bots.schema import Problem


class NodeError(Exception):
    """A node could not run (a bad regex at run time, a host off the allow-list…):
    the engine hands the conversation to a person with ``code`` as the reason."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Step:
    """What a node did: follow ``port``; or ``wait`` for the customer's next message;
    or ``end`` the run ("completed" or "handoff") with ``reason``, ``note``, ``inbox``."""

    port: str | None = None
    wait: bool = False
    end: str | None = None
    reason: str = ""
    note: str = ""
    inbox: int | None = None


@dataclass(frozen=True)
class NodeType:
    name: str
    clean: Callable[[dict, str], dict]
    ports: Callable[[dict], tuple[str, ...]]
    run: Callable[[Any, Any], Step]
    reads: Callable[[dict], list[str]] = lambda config: []
    writes: Callable[[dict], list[str]] = lambda config: []
    # The ports on which ``writes`` are set (None: all); an ask sets its variable only
    # on ``next``, an HTTP request maps its answer only on ``ok``.
    writes_on: tuple[str, ...] | None = None
    check: Callable[[Any, frozenset[str]], list[Problem]] = lambda node, hosts: []
    # A port left without an edge ends the run "completed", unless named here: then the
    # run hands off with (reason, what to tell the customer first, "" for nothing).
    unconnected: dict[str, tuple[str, str]] = field(default_factory=dict)


REGISTRY: dict[str, NodeType] = {}


def register(node_type: NodeType) -> NodeType:
    if node_type.name in REGISTRY:
        raise ValueError(f"node type {node_type.name!r} is registered already")
    REGISTRY[node_type.name] = node_type
    return node_type


def node_type(name: str) -> NodeType | None:
    return REGISTRY.get(name)


# --- helpers shared by the runners ---------------------------------------------------------


def render(template: str, ctx) -> str:
    """``template`` with every ``{{ name }}`` replaced by its value ("" when unset)."""
    if "{{" not in template:
        return template
    return schema.PLACEHOLDER.sub(lambda m: ctx.lookup(m.group(1)), template)


def reads_texts(*values: str) -> list[str]:
    names: list[str] = []
    for value in values:
        if value:
            names.extend(schema.placeholders(value))
    return names


def fold(value: str) -> str:
    return value.strip().casefold()


_DECIMAL = re.compile(r"[+-]?[0-9]{1,18}([.][0-9]{1,10})?", re.ASCII)


def decimal_of(value: str) -> Decimal | None:
    """Plain ASCII decimals only: no "1e999999", no "٣", no "NaN"."""
    value = value.strip().replace(",", ".")
    if not _DECIMAL.fullmatch(value):
        return None
    return Decimal(value)


def compile_pattern(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        raise NodeError("bad_regex") from None


def compare(left: str, op: str, right: str) -> bool:
    if op == "set":
        return bool(left.strip())
    if op == "unset":
        return not left.strip()
    if op == "eq":
        return fold(left) == fold(right)
    if op == "ne":
        return fold(left) != fold(right)
    if op == "contains":
        return fold(right) in fold(left)
    if op == "matches":
        return compile_pattern(right).search(left[:1000]) is not None
    a, b = decimal_of(left), decimal_of(right)
    if a is None or b is None:
        return False
    return a > b if op == "gt" else a < b


MAX_TEXT = 1000
