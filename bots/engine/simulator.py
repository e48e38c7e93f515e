"""simulate(): the engine's runners on an in-memory run; no database, no network."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.utils import timezone

from bots import ai, knowledge, nodes
from bots.engine.walk import (
    HISTORY_TURNS,
    Context,
    Outgoing,
    Walked,
    advance,
    graph_model,
    intent_scorer,
    kb_answerer,
    step_cap,
)
from bots.graph import parse
from bots.models import FlowRun
from parley import validation

# --- the simulator -------------------------------------------------------------------------


@dataclass
class Simulation:
    transcript: list[dict] = field(default_factory=list)
    path: list[dict] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    outcome: str = ""
    reason: str = ""

    def as_dict(self) -> dict:
        return {
            "transcript": self.transcript,
            "path": self.path,
            "variables": self.variables,
            "outcome": self.outcome or "waiting",
            "reason": self.reason,
        }


def _bot_lines(outbox: list[Outgoing]) -> list[dict]:
    lines = []
    for out in outbox:
        text = out.text if not out.media_url else f"{out.text}\n{out.media_url}".strip()
        lines.append({"from": "bot", "text": text, "buttons": list(out.buttons)})
    outbox.clear()
    return lines


def simulate(
    graph: dict,
    messages: list[str],
    *,
    articles: Sequence[knowledge.Article] = (),
    allowed_hosts: Iterable[str] = (),
    contact_name: str = "",
    now=None,
) -> Simulation:
    """Run ``graph`` against ``messages`` in memory: the engine's runners, no database
    writes, no network (an HTTP node is not called: it takes ``ok`` with empty values,
    said in the transcript; the AI node answers from ``articles`` as with no provider)."""
    parsed = parse(graph)
    sim = Simulation()
    ctx = Context(
        variables={},
        state={},
        contact_name=contact_name,
        now=now or timezone.now(),
        allowed_hosts=frozenset(h.lower() for h in allowed_hosts if isinstance(h, str)),
    )
    ctx.intent_scores = intent_scorer(graph_model(parsed))
    pool = list(articles)
    ctx.kb_answer = kb_answerer(
        pool, ("sim", tuple((a.id, a.title, a.body, tuple(a.tags)) for a in pool))
    )

    def history() -> list[tuple[str, str]]:
        # The other turns: the customer's latest message is the question itself.
        customer = [i for i, line in enumerate(sim.transcript) if line["from"] == "customer"]
        skip = customer[-1] if customer else -1
        return [
            ("customer" if line["from"] == "customer" else "bot", line["text"])
            for i, line in enumerate(sim.transcript)
            if line["from"] in ("customer", "bot") and i != skip
        ][-HISTORY_TURNS:]

    ctx.ai_answer = lambda question, tags: ai.ai_answer(
        question=question,
        history=history(),
        articles=[a for a in pool if not tags or set(tags) & set(a.tags)],
        provider=None,
    )

    def http(method, url, body, timeout):
        sim.transcript.append(
            {
                "from": "system",
                "text": f"HTTP {method} {nodes.url_host(url)}: not called in the simulator.",
                "buttons": [],
            }
        )
        return {}

    ctx.http = http

    def on_step(step, node_id, node_type, port):
        sim.transcript.extend(_bot_lines(ctx.outbox))
        sim.path.append({"node": node_id, "type": node_type, "port": port})

    starts = parsed.starts()
    if not starts:
        sim.outcome, sim.reason = FlowRun.Outcome.FAILED, "no_start"
        return sim
    node_id = starts[0].id
    cap = step_cap()
    if not isinstance(messages, list | tuple):
        messages = []
    for index, message in enumerate(messages[:50]):
        text = message if isinstance(message, str) else ""
        if validation.text_problem(text):
            text = ""
        text = text[:1000]
        sim.transcript.append({"from": "customer", "text": text, "buttons": []})
        ctx.message, ctx.fresh = text, index > 0
        walked = advance(parsed, ctx, node_id, cap=cap, on_step=on_step)
        node_id = walked.node
        if walked.outcome:
            _finish_simulation(sim, walked)
            break
    sim.variables = dict(ctx.variables)
    return sim


def _finish_simulation(sim: Simulation, walked: Walked) -> None:
    sim.outcome, sim.reason = walked.outcome, walked.reason
    if walked.customer_text:
        sim.transcript.append({"from": "bot", "text": walked.customer_text, "buttons": []})
    if walked.outcome == FlowRun.Outcome.COMPLETED:
        text = "The flow ended."
    else:
        text = f"Handed to a person ({walked.reason})."
        if walked.note:
            text += f" Note: {walked.note}"
    sim.transcript.append({"from": "system", "text": text, "buttons": []})
