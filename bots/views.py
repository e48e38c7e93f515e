"""The flow editor's pages: the flows list and the canvas of one flow.

Both pages are shells: the script (static/bots/) reads and writes through the
REST API (/api/v1/flows/…), which checks the same permission. Marketers see
flows, inbox names and nothing of conversations or credentials.
"""

from __future__ import annotations

from django.shortcuts import render

from accounts.permissions import permission_required
from accounts.policy import Perm
from bots import selectors
from bots.models import Flow

# The node types of docs/bots-flows.md, in the palette's order: (type, label, hint).
NODE_TYPES = [
    ("start", "Start", "Where the flow begins (exactly one)"),
    ("send", "Send message", "Text with {{variables}}, buttons, a media link"),
    ("ask", "Ask", "A question; the answer goes into a variable"),
    ("condition", "Condition", "Branch on a variable, the contact, the time"),
    ("set", "Set variable", "Give a variable a value"),
    ("intent", "Intent router", "A branch per intent, and a fallback"),
    ("kb_answer", "Knowledge answer", "Answer from the knowledge base"),
    ("ai_answer", "AI answer", "Answer with the AI provider, guarded"),
    ("http", "HTTP request", "Call an allow-listed host, map the answer"),
    ("handoff", "Hand off", "To a human, with a note"),
    ("end", "End", "Finish, with an optional goodbye"),
]


@permission_required(Perm.FLOWS_EDIT)
def flow_list(request):
    return render(
        request,
        "bots/flow_list.html",
        {
            "inboxes": selectors.flow_inbox_choices(by=request.user),
            "triggers": Flow.Trigger.choices,
        },
    )


@permission_required(Perm.FLOWS_EDIT)
def flow_editor(request, flow_id: int):
    flow = selectors.flow_get(by=request.user, flow_id=flow_id)  # 404 when missing
    return render(
        request,
        "bots/flow_editor.html",
        {
            "flow": flow,
            "inboxes": selectors.flow_inbox_choices(by=request.user),
            "triggers": Flow.Trigger.choices,
            "node_types": NODE_TYPES,
        },
    )
