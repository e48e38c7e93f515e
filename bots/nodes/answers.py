"""Knowledge-base and AI answers."""

from __future__ import annotations

from bots import schema
from bots.nodes.registry import (
    NodeType,
    Step,
    register,
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
