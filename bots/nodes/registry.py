"""The node registry: the ``NodeType`` contract, ``register``, and the runners' helpers."""

from __future__ import annotations

import re
import re._constants as sre_constants  # the parsed form of a pattern, to vet it
import re._parser as sre_parse
import unicodedata
from collections.abc import Callable, Iterable
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


def _fold_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def keyword_match(keywords: Iterable[str], text: str) -> bool:
    """A keyword as a whole word (or phrase), case- and accent-insensitively (a
    flow's keyword trigger; an ask's words that hand over at once)."""
    folded = _fold_accents(text)
    for keyword in keywords:
        word = _fold_accents(keyword).strip()
        if word and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", folded):
            return True
    return False


_DECIMAL = re.compile(r"[+-]?[0-9]{1,18}([.][0-9]{1,10})?", re.ASCII)


def decimal_of(value: str) -> Decimal | None:
    """Plain ASCII decimals only: no "1e999999", no "٣", no "NaN"."""
    value = value.strip().replace(",", ".")
    if not _DECIMAL.fullmatch(value):
        return None
    return Decimal(value)


_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT)


def _nested_repeat(items, inside: bool = False) -> bool:
    """Whether a repeated part holds another unbounded repeat: ``(a+)+``, ``(a*)*``…,
    the shapes whose backtracking grows exponentially with the customer's input."""
    for op, arg in items:
        subs: list = []
        if op in _REPEATS:
            unbounded = arg[1] == sre_constants.MAXREPEAT or arg[1] > 10
            if inside and unbounded:
                return True
            if _nested_repeat(arg[2], inside or unbounded):
                return True
            continue
        if op == sre_constants.SUBPATTERN:
            subs = [arg[-1]]
        elif op == sre_constants.BRANCH:
            subs = list(arg[1])
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            subs = [arg[1]]
        if any(_nested_repeat(sub, inside) for sub in subs):
            return True
    return False


def pattern_problem(pattern: str) -> str | None:
    """Why a flow's regular expression may not be used (None: it may)."""
    try:
        parsed = sre_parse.parse(pattern)
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return "The pattern does not compile."
    if _nested_repeat(parsed.data):
        return "The pattern repeats a repetition (like (a+)+): too slow on some answers."
    return None


def compile_pattern(pattern: str) -> re.Pattern:
    """The pattern compiled, or NodeError ``bad_regex`` (see :func:`pattern_problem`)."""
    if pattern_problem(pattern):
        raise NodeError("bad_regex")
    return re.compile(pattern)


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
