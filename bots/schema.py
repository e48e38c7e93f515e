"""The pieces every node type's config checker is built from, and the two error shapes.

``GraphError`` is a graph that cannot be stored at all (wrong types, NUL, limits): the
API answers it 400 with its ``code``. ``Problem`` is a stored graph that cannot be
published yet (a dangling edge, a variable read before it is set): publish answers
them all at once, each naming its node. Both carry codes, never customer text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from parley.validation import text_problem

# Names of variables a flow sets: ``[a-z][a-z0-9_]{0,39}``, ASCII only ("²" is no digit here).
VARIABLE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}", re.ASCII)
BUILTIN_VARIABLES = frozenset({"contact.name", "message", "intent", "now"})
# ``{{ name }}`` in a text; what is between the braces is checked by validation.
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]{0,80}?)\s*\}\}")
MAX_NUMBER = 1_000_000


class GraphError(ValueError):
    """The graph cannot be parsed: ``code`` is stable, ``node`` the node at fault (or None)."""

    def __init__(self, code: str, message: str, node: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.node = node

    def as_dict(self) -> dict:
        return {"code": self.code, "detail": self.message, "node": self.node}


@dataclass(frozen=True)
class Problem:
    """A reason a graph cannot be published, on its node (None: the whole graph)."""

    node: str | None
    code: str
    message: str

    def as_dict(self) -> dict:
        return {"node": self.node, "code": self.code, "message": self.message}


def text(value, *, node: str | None, key: str, max_length: int, required: bool = False) -> str:
    """A string of at most ``max_length`` characters with no NUL and no lone surrogate."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise GraphError("config_bad_value", f"{key} is a string.", node)
    if len(value) > max_length:
        raise GraphError("config_too_long", f"{key} has at most {max_length} characters.", node)
    problem = text_problem(value)
    if problem:
        raise GraphError("config_bad_text", f"{key}: {problem}", node)
    if required and not value.strip():
        raise GraphError("config_required", f"{key} is required.", node)
    return value


def integer(value, *, node: str | None, key: str, minimum: int, maximum: int, default: int) -> int:
    """A JSON integer within bounds (no bool, no string of digits, no float)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise GraphError(
            "config_bad_value", f"{key} is a whole number from {minimum} to {maximum}.", node
        )
    return value


def fraction(value, *, node: str | None, key: str, default: float | None) -> float | None:
    """A number from 0 to 1 (a threshold)."""
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= 1  # before isfinite: a huge int does not fit a float
        or not math.isfinite(value)
    ):
        raise GraphError("config_bad_value", f"{key} is a number from 0 to 1.", node)
    return float(value)


def choice(value, *, node: str | None, key: str, options: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or value not in options:
        raise GraphError("config_bad_value", f"{key} is one of {', '.join(options)}.", node)
    return value


def text_list(value, *, node: str | None, key: str, max_items: int, max_length: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise GraphError("config_bad_value", f"{key} is a list of strings.", node)
    if len(value) > max_items:
        raise GraphError("config_too_many", f"{key} has at most {max_items} items.", node)
    return [text(item, node=node, key=key, max_length=max_length) for item in value]


def variable_name(value, *, node: str | None, key: str, required: bool) -> str:
    """A variable a node sets: ``[a-z][a-z0-9_]{0,39}`` (empty allowed while a draft)."""
    name = text(value, node=node, key=key, max_length=40)
    if name and not VARIABLE_NAME.fullmatch(name):
        raise GraphError(
            "config_bad_variable",
            f"{key}: a variable name is a-z, 0-9 and _, starting with a letter.",
            node,
        )
    return name


def config_keys(config, *, node: str | None, allowed: frozenset[str]) -> dict:
    """The config object itself: a dict with only known keys."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise GraphError("config_not_object", "config is an object.", node)
    for key in config:
        if not isinstance(key, str) or key not in allowed:
            raise GraphError("config_unknown_key", "config has an unknown key.", node)
    return config


def placeholders(value: str) -> list[str]:
    """The variable names a text reads (``{{ name }}``), in order, as written."""
    return PLACEHOLDER.findall(value) if "{{" in value else []


def readable(name: str) -> bool:
    """Whether ``name`` may appear in ``{{ }}``: a flow variable or a built-in."""
    return name in BUILTIN_VARIABLES or bool(VARIABLE_NAME.fullmatch(name))
