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

import datetime as _dt
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings

from bots import schema
from bots.schema import GraphError, Problem
from parley.validation import text_problem


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


def _reads_texts(*values: str) -> list[str]:
    names: list[str] = []
    for value in values:
        if value:
            names.extend(schema.placeholders(value))
    return names


def _fold(value: str) -> str:
    return value.strip().casefold()


def _number(value: str) -> Decimal | None:
    value = value.strip().replace(",", ".")
    if not value or len(value) > 30 or not value.isascii():
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        raise NodeError("bad_regex") from None


def _compare(left: str, op: str, right: str) -> bool:
    if op == "set":
        return bool(left.strip())
    if op == "unset":
        return not left.strip()
    if op == "eq":
        return _fold(left) == _fold(right)
    if op == "ne":
        return _fold(left) != _fold(right)
    if op == "contains":
        return _fold(right) in _fold(left)
    if op == "matches":
        return _compile(right).search(left[:1000]) is not None
    a, b = _number(left), _number(right)
    if a is None or b is None:
        return False
    return a > b if op == "gt" else a < b


# --- start ---------------------------------------------------------------------------------


def _clean_empty(config, node):
    schema.config_keys(config, node=node, allowed=frozenset())
    return {}


register(
    NodeType(
        name="start",
        clean=_clean_empty,
        ports=lambda config: ("next",),
        run=lambda ctx, node: Step(port="next"),
    )
)


# --- send ----------------------------------------------------------------------------------

MAX_TEXT = 1000
MAX_BUTTONS = 10  # up to 3 are buttons, 4 to 10 are quick replies
MAX_BUTTON_CHARS = 20


def _clean_send(config, node):
    config = schema.config_keys(
        config, node=node, allowed=frozenset({"text", "buttons", "media_url"})
    )
    return {
        "text": schema.text(config.get("text"), node=node, key="text", max_length=MAX_TEXT),
        "buttons": schema.text_list(
            config.get("buttons"),
            node=node,
            key="buttons",
            max_items=MAX_BUTTONS,
            max_length=MAX_BUTTON_CHARS,
        ),
        "media_url": schema.text(
            config.get("media_url"), node=node, key="media_url", max_length=1000
        ),
    }


def https_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        return "must be an https link"
    return None


def _check_send(node, hosts) -> list[Problem]:
    out = []
    config = node.config
    if not config["text"].strip() and not config["media_url"]:
        out.append(Problem(node.id, "send_empty", "A message needs text or a media link."))
    if config["media_url"] and https_url_problem(config["media_url"]):
        out.append(Problem(node.id, "media_not_https", "The media link must be an https URL."))
    if any(not b.strip() for b in config["buttons"]):
        out.append(Problem(node.id, "button_empty", "A button needs a title."))
    return out


def _run_send(ctx, node) -> Step:
    config = node.config
    ctx.send(render(config["text"], ctx), buttons=config["buttons"], media_url=config["media_url"])
    return Step(port="next")


register(
    NodeType(
        name="send",
        clean=_clean_send,
        ports=lambda config: ("next",),
        run=_run_send,
        reads=lambda config: _reads_texts(config["text"]),
        check=_check_send,
    )
)


# --- ask -----------------------------------------------------------------------------------

ASK_KINDS = ("text", "email", "phone", "number", "date", "choice", "regex")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_PHONE = re.compile(r"\+?[0-9 ().-]{6,24}", re.ASCII)
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y")


def _clean_ask(config, node):
    config = schema.config_keys(
        config,
        node=node,
        allowed=frozenset(
            {"text", "kind", "choices", "pattern", "variable", "retries", "retry_text"}
        ),
    )
    return {
        "text": schema.text(config.get("text"), node=node, key="text", max_length=MAX_TEXT),
        "kind": schema.choice(
            config.get("kind"), node=node, key="kind", options=ASK_KINDS, default="text"
        ),
        "choices": schema.text_list(
            config.get("choices"), node=node, key="choices", max_items=10, max_length=100
        ),
        "pattern": schema.text(config.get("pattern"), node=node, key="pattern", max_length=200),
        "variable": schema.variable_name(
            config.get("variable"), node=node, key="variable", required=False
        ),
        "retries": schema.integer(
            config.get("retries"), node=node, key="retries", minimum=0, maximum=5, default=2
        ),
        "retry_text": schema.text(
            config.get("retry_text"), node=node, key="retry_text", max_length=MAX_TEXT
        ),
    }


def _check_ask(node, hosts) -> list[Problem]:
    config, out = node.config, []
    if not config["text"].strip():
        out.append(Problem(node.id, "ask_no_text", "An ask needs its question."))
    if not config["variable"]:
        out.append(Problem(node.id, "ask_no_variable", "Say which variable gets the answer."))
    if config["kind"] == "choice" and not [c for c in config["choices"] if c.strip()]:
        out.append(Problem(node.id, "ask_no_choices", "A choice needs its choices."))
    if config["kind"] == "regex":
        if not config["pattern"]:
            out.append(Problem(node.id, "ask_no_pattern", "A pattern question needs a pattern."))
        else:
            try:
                re.compile(config["pattern"])
            except (re.error, RecursionError, OverflowError):
                out.append(Problem(node.id, "ask_bad_pattern", "The pattern does not compile."))
    return out


def answer_of(config: dict, answer: str) -> str | None:
    """The answer as stored, or None when it does not fit the question's kind."""
    answer = answer.strip()
    kind = config["kind"]
    if not answer or len(answer) > 1000:
        return None
    if kind == "text":
        return answer
    if kind == "email":
        return answer if len(answer) <= 254 and _EMAIL.fullmatch(answer) else None
    if kind == "phone":
        digits = sum(ch.isdigit() for ch in answer)
        return answer if _PHONE.fullmatch(answer) and 6 <= digits <= 15 else None
    if kind == "number":
        number = _number(answer)
        return None if number is None else answer.replace(",", ".")
    if kind == "date":
        if not answer.isascii():
            return None
        for fmt in _DATE_FORMATS:
            try:
                return _dt.datetime.strptime(answer, fmt).date().isoformat()
            except ValueError:
                continue
        return None
    if kind == "choice":
        choices = [c for c in config["choices"] if c.strip()]
        if answer.isascii() and answer.isdigit() and 1 <= int(answer[:3]) <= len(choices):
            return choices[int(answer[:3]) - 1]
        folded = _fold(answer)
        return next((c for c in choices if _fold(c) == folded), None)
    if kind == "regex":
        return answer if _compile(config["pattern"]).fullmatch(answer) else None
    return None


def _run_ask(ctx, node) -> Step:
    config = node.config
    asking = ctx.state.get("ask")
    buttons = [c for c in config["choices"] if c.strip()] if config["kind"] == "choice" else []
    if not asking or asking.get("node") != node.id:
        # First arrival: put the question and wait for the next message.
        if config["kind"] == "regex":
            _compile(config["pattern"])  # a pattern that cannot compile fails the node now
        ctx.state["ask"] = {"node": node.id, "tries": 0}
        ctx.send(render(config["text"], ctx), buttons=buttons)
        return Step(wait=True)
    if not ctx.take_message():
        return Step(wait=True)
    value = answer_of(config, ctx.message)
    if value is not None:
        ctx.state.pop("ask", None)
        if config["variable"]:
            ctx.variables[config["variable"]] = value
        return Step(port="next")
    asking["tries"] += 1
    if asking["tries"] > config["retries"]:
        ctx.state.pop("ask", None)
        return Step(port="fallback")
    ctx.send(render(config["retry_text"] or config["text"], ctx), buttons=buttons)
    return Step(wait=True)


register(
    NodeType(
        name="ask",
        clean=_clean_ask,
        ports=lambda config: ("next", "fallback"),
        run=_run_ask,
        reads=lambda config: _reads_texts(config["text"], config["retry_text"]),
        writes=lambda config: [config["variable"]] if config["variable"] else [],
        writes_on=("next",),
        check=_check_ask,
        unconnected={"fallback": ("ask_no_valid_answer", "")},
    )
)


# --- condition -----------------------------------------------------------------------------

CONDITION_KINDS = ("variable", "contact", "time", "business_hours")
OPS = ("eq", "ne", "contains", "gt", "lt", "set", "unset", "matches")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]", re.ASCII)
_CONTACT_FIELD = re.compile(r"name|has_email|has_phone|attributes\.[A-Za-z0-9_-]{1,40}", re.ASCII)


def _clean_condition(config, node):
    config = schema.config_keys(
        config,
        node=node,
        allowed=frozenset({"kind", "variable", "field", "op", "value", "days", "from", "to"}),
    )
    days = config.get("days")
    if days is None:
        days = []
    if not isinstance(days, list) or len(days) > 7:
        raise GraphError("config_bad_value", "days is a list of 0 to 6 (Monday 0).", node)
    for day in days:
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise GraphError("config_bad_value", "days is a list of 0 to 6 (Monday 0).", node)
    return {
        "kind": schema.choice(
            config.get("kind"), node=node, key="kind", options=CONDITION_KINDS, default="variable"
        ),
        "variable": schema.text(config.get("variable"), node=node, key="variable", max_length=40),
        "field": schema.text(config.get("field"), node=node, key="field", max_length=60),
        "op": schema.choice(config.get("op"), node=node, key="op", options=OPS, default="eq"),
        "value": schema.text(config.get("value"), node=node, key="value", max_length=200),
        "days": sorted(set(days)),
        "from": schema.text(config.get("from"), node=node, key="from", max_length=5),
        "to": schema.text(config.get("to"), node=node, key="to", max_length=5),
    }


def _check_condition(node, hosts) -> list[Problem]:
    config, out = node.config, []
    kind = config["kind"]
    if kind == "variable" and not schema.readable(config["variable"]):
        out.append(Problem(node.id, "condition_no_variable", "Say which variable to test."))
    if kind == "contact" and not _CONTACT_FIELD.fullmatch(config["field"]):
        out.append(
            Problem(
                node.id,
                "condition_bad_field",
                "The field is name, has_email, has_phone or attributes.<key>.",
            )
        )
    if kind in ("variable", "contact") and config["op"] == "matches":
        try:
            re.compile(config["value"])
        except (re.error, RecursionError, OverflowError):
            out.append(Problem(node.id, "condition_bad_pattern", "The pattern does not compile."))
    if kind == "time":
        if not (_HHMM.fullmatch(config["from"]) and _HHMM.fullmatch(config["to"])):
            out.append(Problem(node.id, "condition_bad_time", "From and to are HH:MM times."))
        if not config["days"]:
            out.append(Problem(node.id, "condition_no_days", "Pick at least one day."))
    return out


def _reads_condition(config) -> list[str]:
    names = _reads_texts(config["value"]) if config["kind"] in ("variable", "contact") else []
    if config["kind"] == "variable" and config["variable"]:
        names.insert(0, config["variable"])
    return names


def _run_condition(ctx, node) -> Step:
    config = node.config
    kind = config["kind"]
    if kind == "variable":
        result = _compare(
            ctx.lookup(config["variable"]), config["op"], render(config["value"], ctx)
        )
    elif kind == "contact":
        result = _compare(
            ctx.contact_field(config["field"]), config["op"], render(config["value"], ctx)
        )
    elif kind == "time":
        local = ctx.local_now()
        now = local.strftime("%H:%M")
        start, end = config["from"], config["to"]
        in_window = (start <= now < end) if start <= end else (now >= start or now < end)
        result = local.weekday() in config["days"] and in_window
    else:
        result = ctx.within_business_hours()
    return Step(port="yes" if result else "no")


register(
    NodeType(
        name="condition",
        clean=_clean_condition,
        ports=lambda config: ("yes", "no"),
        run=_run_condition,
        reads=_reads_condition,
        check=_check_condition,
    )
)


# --- set -----------------------------------------------------------------------------------


def _clean_set(config, node):
    config = schema.config_keys(config, node=node, allowed=frozenset({"variable", "value"}))
    return {
        "variable": schema.variable_name(
            config.get("variable"), node=node, key="variable", required=False
        ),
        "value": schema.text(config.get("value"), node=node, key="value", max_length=MAX_TEXT),
    }


def _run_set(ctx, node) -> Step:
    ctx.variables[node.config["variable"]] = render(node.config["value"], ctx)
    return Step(port="next")


register(
    NodeType(
        name="set",
        clean=_clean_set,
        ports=lambda config: ("next",),
        run=_run_set,
        reads=lambda config: _reads_texts(config["value"]),
        writes=lambda config: [config["variable"]] if config["variable"] else [],
        check=lambda node, hosts: (
            []
            if node.config["variable"]
            else [Problem(node.id, "set_no_variable", "Say which variable to set.")]
        ),
    )
)


# --- intent router -------------------------------------------------------------------------

MAX_INTENTS = 20
MAX_EXAMPLES = 50


def _clean_intent(config, node):
    config = schema.config_keys(config, node=node, allowed=frozenset({"intents", "threshold"}))
    intents = config.get("intents")
    if intents is None:
        intents = []
    if not isinstance(intents, list):
        raise GraphError("config_bad_value", "intents is a list.", node)
    if len(intents) > MAX_INTENTS:
        raise GraphError("config_too_many", f"At most {MAX_INTENTS} intents.", node)
    out = []
    for item in intents:
        item = schema.config_keys(item, node=node, allowed=frozenset({"name", "examples"}))
        name = schema.variable_name(item.get("name"), node=node, key="intent name", required=True)
        examples = schema.text_list(
            item.get("examples"), node=node, key="examples", max_items=MAX_EXAMPLES, max_length=200
        )
        out.append({"name": name, "examples": examples})
    return {
        "intents": out,
        "threshold": schema.fraction(
            config.get("threshold"), node=node, key="threshold", default=None
        ),
    }


def _check_intent(node, hosts) -> list[Problem]:
    out, seen = [], set()
    intents = node.config["intents"]
    if not intents:
        out.append(Problem(node.id, "intent_none", "An intent router needs at least one intent."))
    for intent in intents:
        name = intent["name"]
        if not name:
            out.append(Problem(node.id, "intent_no_name", "Every intent needs a name."))
        elif name in seen:
            out.append(Problem(node.id, "intent_duplicate", f"Intent {name} appears twice."))
        seen.add(name)
        if not [e for e in intent["examples"] if e.strip()]:
            out.append(
                Problem(
                    node.id,
                    "intent_without_examples",
                    f"Intent {name or '(unnamed)'} needs at least one example.",
                )
            )
    return out


def _run_intent(ctx, node) -> Step:
    names = [i["name"] for i in node.config["intents"] if i["name"]]
    scores = ctx.intent_scores(ctx.message)
    threshold = node.config["threshold"]
    if threshold is None:
        threshold = ctx.default_intent_threshold
    best, score = None, -1.0
    for name in names:  # the router's own intents, first one wins a tie (deterministic)
        value = scores.get(name, 0.0)
        if value > score:
            best, score = name, value
    if best is None or score < threshold:
        return Step(port="fallback")
    ctx.state["intent"] = best
    return Step(port=f"intent:{best}")


register(
    NodeType(
        name="intent",
        clean=_clean_intent,
        ports=lambda config: (
            *(f"intent:{i['name']}" for i in config["intents"] if i["name"]),
            "fallback",
        ),
        run=_run_intent,
        check=_check_intent,
    )
)


# --- knowledge-base answer -----------------------------------------------------------------

KB_UNKNOWN_TEXT = "I'm not sure about that one. Let me find a person who can help."


def _clean_tags(config, node, extra=frozenset()):
    config = schema.config_keys(config, node=node, allowed=frozenset({"tags"}) | extra)
    return config, schema.text_list(
        config.get("tags"), node=node, key="tags", max_items=10, max_length=40
    )


def _clean_kb(config, node):
    config, tags = _clean_tags(config, node, frozenset({"threshold"}))
    return {
        "tags": tags,
        "threshold": schema.fraction(
            config.get("threshold"), node=node, key="threshold", default=None
        ),
    }


def _run_kb(ctx, node) -> Step:
    found = ctx.kb_answer(ctx.message, tags=node.config["tags"], threshold=node.config["threshold"])
    if found is None:
        return Step(port="unknown")
    ctx.send(found)
    return Step(port="answered")


register(
    NodeType(
        name="kb_answer",
        clean=_clean_kb,
        ports=lambda config: ("answered", "unknown"),
        run=_run_kb,
        unconnected={"unknown": ("kb_unknown", KB_UNKNOWN_TEXT)},
    )
)


# --- AI answer -----------------------------------------------------------------------------

AI_HANDOFF_TEXT = "Let me connect you with a person who can help."


def _clean_ai(config, node):
    _, tags = _clean_tags(config, node)
    return {"tags": tags}


def _run_ai(ctx, node) -> Step:
    result = ctx.ai_answer(ctx.message, tags=node.config["tags"])
    if result.kind == "handoff":
        return Step(port="handoff", reason=f"ai_{result.reason}"[:60])
    ctx.send(result.text)
    return Step(port="answered")


register(
    NodeType(
        name="ai_answer",
        clean=_clean_ai,
        ports=lambda config: ("answered", "handoff"),
        run=_run_ai,
        unconnected={"handoff": ("ai_handoff", AI_HANDOFF_TEXT)},
    )
)


# --- HTTP request --------------------------------------------------------------------------

MAP_PATH = re.compile(r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,9}", re.ASCII)
MAX_MAPPED_CHARS = 1000


class HttpFailure(Exception):
    """The call failed (network, status, not JSON): the node takes its ``error`` port."""


def _clean_http(config, node):
    config = schema.config_keys(
        config, node=node, allowed=frozenset({"method", "url", "body", "map", "timeout"})
    )
    mapping = config.get("map")
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise GraphError("config_bad_value", "map is an object of variable: path.", node)
    if len(mapping) > 20:
        raise GraphError("config_too_many", "map has at most 20 entries.", node)
    clean_map = {}
    for name, path in mapping.items():
        name = schema.variable_name(name, node=node, key="map", required=True)
        path = schema.text(path, node=node, key="map", max_length=200)
        clean_map[name] = path
    return {
        "method": schema.choice(
            config.get("method"), node=node, key="method", options=("GET", "POST"), default="GET"
        ),
        "url": schema.text(config.get("url"), node=node, key="url", max_length=1000),
        "body": schema.text(config.get("body"), node=node, key="body", max_length=4000),
        "map": clean_map,
        "timeout": schema.integer(
            config.get("timeout"), node=node, key="timeout", minimum=1, maximum=10, default=5
        ),
    }


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(url: str) -> str | None:
    """The lower-case (IDNA) host of an https URL whose host has no variables, else None.
    Outside production a loopback host may be called over http (a service on this
    machine, the tests' local server), as for the AI provider's base URL."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if not host or "{" in host or parts.username or parts.password:
        return None
    if parts.scheme != "https" and not (
        parts.scheme == "http" and not settings.PRODUCTION and _loopback(host)
    ):
        return None
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def _check_http(node, hosts) -> list[Problem]:
    config, out = node.config, []
    host = url_host(config["url"])
    if host is None:
        out.append(
            Problem(
                node.id,
                "http_bad_url",
                "The URL is an https link with a fixed host (no variables in it).",
            )
        )
    elif host not in hosts:
        out.append(
            Problem(
                node.id,
                "http_host_not_allowed",
                f"{host} is not on the allowed hosts list (ask an admin to add it).",
            )
        )
    for path in config["map"].values():
        if not MAP_PATH.fullmatch(path):
            out.append(Problem(node.id, "http_bad_map", "A map path looks like a.b.0.c."))
            break
    if config["method"] == "POST" and config["body"].strip():
        # Variables go in as JSON strings, so only the shape around them is checked.
        sample = schema.PLACEHOLDER.sub("0", config["body"])
        try:
            json.loads(sample)
        except ValueError:
            out.append(Problem(node.id, "http_bad_body", "The body is not JSON."))
    return out


def _json_path(document, path: str) -> str:
    value = document
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isascii() and part.isdigit() and len(part) < 6:
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            value = None
        if value is None:
            return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif not isinstance(value, str):
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return "" if text_problem(value) else value[:MAX_MAPPED_CHARS]


def _run_http(ctx, node) -> Step:
    config = node.config
    url = schema.PLACEHOLDER.sub(lambda m: quote(ctx.lookup(m.group(1)), safe=""), config["url"])
    host = url_host(url)
    if host is None or host not in ctx.allowed_hosts:
        raise NodeError("http_host_not_allowed")
    body = None
    if config["method"] == "POST" and config["body"].strip():
        rendered = schema.PLACEHOLDER.sub(
            lambda m: json.dumps(ctx.lookup(m.group(1)))[1:-1], config["body"]
        )
        try:
            body = json.loads(rendered)
        except ValueError:
            raise NodeError("http_bad_body") from None
    try:
        document = ctx.http(config["method"], url, body, config["timeout"])
    except HttpFailure:
        return Step(port="error")
    for name, path in config["map"].items():
        ctx.variables[name] = _json_path(document, path)
    return Step(port="ok")


register(
    NodeType(
        name="http",
        clean=_clean_http,
        ports=lambda config: ("ok", "error"),
        run=_run_http,
        reads=lambda config: _reads_texts(config["url"], config["body"]),
        writes=lambda config: list(config["map"]),
        writes_on=("ok",),
        check=_check_http,
        unconnected={"error": ("http_error", "")},
    )
)


# --- handoff and end -----------------------------------------------------------------------


def _clean_handoff(config, node):
    config = schema.config_keys(config, node=node, allowed=frozenset({"inbox", "note"}))
    inbox = config.get("inbox")
    if inbox is not None:
        inbox = schema.integer(
            inbox, node=node, key="inbox", minimum=1, maximum=2**63 - 1, default=None
        )
    return {
        "inbox": inbox,
        "note": schema.text(config.get("note"), node=node, key="note", max_length=500),
    }


register(
    NodeType(
        name="handoff",
        clean=_clean_handoff,
        ports=lambda config: (),
        run=lambda ctx, node: Step(
            end="handoff",
            reason="handoff_node",
            note=render(node.config["note"], ctx),
            inbox=node.config["inbox"],
        ),
        reads=lambda config: _reads_texts(config["note"]),
    )
)


def _clean_end(config, node):
    config = schema.config_keys(config, node=node, allowed=frozenset({"text"}))
    return {"text": schema.text(config.get("text"), node=node, key="text", max_length=MAX_TEXT)}


def _run_end(ctx, node) -> Step:
    if node.config["text"].strip():
        ctx.send(render(node.config["text"], ctx))
    return Step(end="completed", reason="end_node")


register(
    NodeType(
        name="end",
        clean=_clean_end,
        ports=lambda config: (),
        run=_run_end,
        reads=lambda config: _reads_texts(config["text"]),
    )
)
