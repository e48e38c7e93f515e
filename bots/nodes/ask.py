"""The ask node: a question, the answer checked by kind, retries and a fallback.

``leave_words`` (optional, e.g. "agent", "human"): a message holding one of them
as a whole word (case- and accent-insensitively, as a keyword trigger matches)
is no answer: the ask leaves by ``fallback`` at once, or hands off with
``ask_person_asked`` when that port has no edge. A customer who asks for a person
in the middle of a question is not told to try again."""

from __future__ import annotations

import datetime as _dt
import re

from bots import schema
from bots.nodes.registry import (
    MAX_TEXT,
    NodeType,
    Step,
    compile_pattern,
    decimal_of,
    fold,
    keyword_match,
    pattern_problem,
    reads_texts,
    register,
    render,
)
from bots.schema import Problem

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
            {
                "text",
                "kind",
                "choices",
                "pattern",
                "variable",
                "retries",
                "retry_text",
                "leave_words",
            }
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
        "leave_words": schema.text_list(
            config.get("leave_words"), node=node, key="leave_words", max_items=10, max_length=60
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
            problem = pattern_problem(config["pattern"])
            if problem:
                out.append(Problem(node.id, "ask_bad_pattern", problem))
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
        value = decimal_of(answer)
        return None if value is None else answer.replace(",", ".")
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
        folded = fold(answer)
        return next((c for c in choices if fold(c) == folded), None)
    if kind == "regex":
        return answer if compile_pattern(config["pattern"]).fullmatch(answer) else None
    return None


def _run_ask(ctx, node) -> Step:
    config = node.config
    asking = ctx.state.get("ask")
    buttons = [c for c in config["choices"] if c.strip()] if config["kind"] == "choice" else []
    if not asking or asking.get("node") != node.id:
        # First arrival: put the question and wait for the next message.
        if config["kind"] == "regex":
            compile_pattern(config["pattern"])  # a pattern that cannot compile fails the node now
        ctx.state["ask"] = {"node": node.id, "tries": 0}
        ctx.send(render(config["text"], ctx), buttons=buttons)
        return Step(wait=True)
    if not ctx.take_message():
        return Step(wait=True)
    if config["leave_words"] and keyword_match(config["leave_words"], ctx.message):
        ctx.state.pop("ask", None)
        return Step(port="fallback", reason="ask_person_asked")
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
        reads=lambda config: reads_texts(config["text"], config["retry_text"]),
        writes=lambda config: [config["variable"]] if config["variable"] else [],
        writes_on=("next",),
        check=_check_ask,
        unconnected={"fallback": ("ask_no_valid_answer", "")},
    )
)
