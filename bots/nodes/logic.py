"""Condition and intent router: the branches."""

from __future__ import annotations

import re

from bots import schema
from bots.nodes.registry import (
    NodeType,
    Step,
    compare,
    pattern_problem,
    reads_texts,
    register,
    render,
)
from bots.schema import GraphError, Problem

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
        problem = pattern_problem(config["value"])
        if problem:
            out.append(Problem(node.id, "condition_bad_pattern", problem))
    if kind == "time":
        if not (_HHMM.fullmatch(config["from"]) and _HHMM.fullmatch(config["to"])):
            out.append(Problem(node.id, "condition_bad_time", "From and to are HH:MM times."))
        if not config["days"]:
            out.append(Problem(node.id, "condition_no_days", "Pick at least one day."))
    return out


def _reads_condition(config) -> list[str]:
    names = reads_texts(config["value"]) if config["kind"] in ("variable", "contact") else []
    if config["kind"] == "variable" and config["variable"]:
        names.insert(0, config["variable"])
    return names


def _run_condition(ctx, node) -> Step:
    config = node.config
    kind = config["kind"]
    if kind == "variable":
        result = compare(ctx.lookup(config["variable"]), config["op"], render(config["value"], ctx))
    elif kind == "contact":
        result = compare(
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
