"""Start, send, set, handoff and end."""

from __future__ import annotations

from urllib.parse import urlsplit

from bots import schema
from bots.nodes.registry import (
    MAX_TEXT,
    NodeType,
    Step,
    reads_texts,
    register,
    render,
)
from bots.schema import Problem

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
        reads=lambda config: reads_texts(config["text"]),
        check=_check_send,
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
        reads=lambda config: reads_texts(config["value"]),
        writes=lambda config: [config["variable"]] if config["variable"] else [],
        check=lambda node, hosts: (
            []
            if node.config["variable"]
            else [Problem(node.id, "set_no_variable", "Say which variable to set.")]
        ),
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
        reads=lambda config: reads_texts(config["note"]),
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
        reads=lambda config: reads_texts(config["text"]),
    )
)
