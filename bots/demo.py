"""The demo tenant's bot (development seed, ``parley_demo``): a published flow on the
web chat inbox that greets, understands a few intents (with typos), answers from the
knowledge base, asks for an order number and hands the customer to an agent.

Built through the same services a marketer's clicks go through (so it is validated,
published, trained and audited like any flow). Idempotent: a tenant that already has
the flow keeps it as its marketer left it.
"""

from __future__ import annotations

from bots import services
from bots.models import Flow, KnowledgeArticle

DEMO_FLOW = "Website assistant"

ARTICLES = [
    (
        "Returns and refunds",
        "You can return any item within 30 days of delivery, unused and in its original "
        "packaging. Start a return from your order page; we e-mail a prepaid label. "
        "Refunds reach your card within 5 working days of the parcel arriving back.",
        ["returns"],
    ),
    (
        "Opening hours",
        "Our support team answers chats Monday to Friday, 9:00 to 18:00 (CET). Outside "
        "those hours the assistant answers and a person follows up the next working day.",
        ["hours"],
    ),
    (
        "Shipping times",
        "Orders placed before 14:00 ship the same working day. Delivery takes 1 to 3 "
        "working days in the EU; tracking links arrive by e-mail once the parcel ships.",
        ["shipping"],
    ),
    (
        "Payment methods",
        "We accept Visa, Mastercard, American Express, PayPal and bank transfer. Invoices "
        "are in your account under Orders.",
        ["payment"],
    ),
]

INTENTS = [
    {
        "name": "greeting",
        "examples": [
            "hi",
            "hello",
            "hello there",
            "good morning",
            "hey",
            "hi, can you help me",
            "hello, I have a question",
        ],
    },
    {
        "name": "orders",
        "examples": [
            "where is my order",
            "track my parcel",
            "my package has not arrived",
            "when will my order be delivered",
            "order status",
            "has my order shipped yet",
        ],
    },
    {
        "name": "returns",
        "examples": [
            "how do I return an item",
            "I want a refund",
            "can I send it back",
            "return policy",
            "how long do refunds take",
            "exchange a product",
        ],
    },
    {
        "name": "shipping",
        "examples": [
            "how long does shipping take",
            "when will it arrive",
            "delivery time",
            "do you ship to germany",
            "shipping costs",
            "how fast is delivery",
        ],
    },
    {
        "name": "hours",
        "examples": [
            "what are your opening hours",
            "when are you open",
            "are you open on weekends",
            "what time does support close",
            "business hours",
            "when can I reach someone",
        ],
    },
    {
        "name": "human",
        "examples": [
            "talk to a person",
            "I want a human",
            "agent please",
            "speak to someone",
            "connect me to support staff",
            "real person",
        ],
    },
]


def _node(node_id: str, node_type: str, x: int, y: int, **config) -> dict:
    return {"id": node_id, "type": node_type, "x": x, "y": y, "config": config}


def demo_graph() -> dict:
    more = "Anything else? Ask about orders, shipping, returns or opening hours, or type agent."
    nodes = [
        _node("start", "start", 40, 200),
        _node("route", "intent", 240, 200, intents=INTENTS, threshold=0.35),
        _node(
            "hello",
            "send",
            480,
            40,
            text="Hi! I'm Acme's assistant. I can help with orders, shipping, returns and "
            "opening hours, or hand you to a person.",
        ),
        _node("more", "ask", 720, 40, text=more, kind="text", variable="question"),
        _node(
            "ask_order",
            "ask",
            480,
            160,
            text="What is your order number? It looks like A-12345.",
            kind="regex",
            pattern=r"^[A-Za-z]-?\d{4,8}$",
            variable="order",
            retries=2,
            retry_text="That doesn't look like an order number (like A-12345). Try again, "
            "or type agent for a person.",
            leave_words=["agent", "human", "person"],
        ),
        _node(
            "order_thanks",
            "send",
            720,
            160,
            text="Thanks! A teammate will look up order {{order}} and reply here.",
        ),
        _node(
            "order_handoff",
            "handoff",
            960,
            160,
            note="Customer asks where order {{order}} is.",
        ),
        # A topic the router recognised: its articles only, so a typo still finds them.
        _node("kb_returns", "kb_answer", 480, 260, tags=["returns"], threshold=0.01),
        _node("kb_shipping", "kb_answer", 480, 300, tags=["shipping"], threshold=0.01),
        _node("kb_hours", "kb_answer", 480, 340, tags=["hours"], threshold=0.01),
        # Anything else: the whole knowledge base, at its usual threshold.
        _node("kb", "kb_answer", 480, 380),
        _node(
            "connecting",
            "send",
            480,
            420,
            text="I'm connecting you to a person; they will answer here.",
        ),
        _node("handoff", "handoff", 720, 420, note="The customer asked for a person."),
        _node(
            "unsure",
            "send",
            720,
            240,
            text="I'm not sure about that one. Let me find a person who can help.",
        ),
        _node(
            "unknown_handoff",
            "handoff",
            720,
            300,
            note="The assistant could not answer the customer's question.",
        ),
    ]
    edges = [
        ("start", "next", "route"),
        ("route", "intent:greeting", "hello"),
        ("hello", "next", "more"),
        ("more", "next", "route"),
        ("route", "intent:orders", "ask_order"),
        ("ask_order", "next", "order_thanks"),
        ("ask_order", "fallback", "connecting"),
        ("order_thanks", "next", "order_handoff"),
        ("route", "intent:returns", "kb_returns"),
        ("route", "intent:shipping", "kb_shipping"),
        ("route", "intent:hours", "kb_hours"),
        ("route", "fallback", "kb"),
        *[(kb, "answered", "more") for kb in ("kb_returns", "kb_shipping", "kb_hours", "kb")],
        *[(kb, "unknown", "unsure") for kb in ("kb_returns", "kb_shipping", "kb_hours", "kb")],
        ("unsure", "next", "unknown_handoff"),
        ("route", "intent:human", "connecting"),
        ("connecting", "next", "handoff"),
    ]
    for node in nodes:
        node["x"], node["y"] = LAYOUT[node["id"]]
    return {
        "nodes": nodes,
        "edges": [{"from": a, "port": p, "to": b} for a, p, b in edges],
    }


# Where the editor shows each node: columns left to right as the flow goes, a row
# per branch, spaced so no two nodes overlap on the canvas.
LAYOUT = {
    "start": (40, 300),
    "route": (270, 300),
    "hello": (540, 20),
    "ask_order": (540, 140),
    "kb_returns": (540, 260),
    "kb_shipping": (540, 370),
    "kb_hours": (540, 480),
    "kb": (540, 590),
    "connecting": (540, 700),
    "more": (820, 20),
    "order_thanks": (820, 140),
    "unsure": (820, 420),
    "handoff": (820, 700),
    "order_handoff": (1100, 140),
    "unknown_handoff": (1100, 420),
}


def demo_bot_ensure(*, by, inbox) -> Flow:
    """The demo's knowledge articles and its published flow on ``inbox``."""
    for title, body, tags in ARTICLES:
        if not KnowledgeArticle.objects.filter(title=title).exists():
            services.article_create(by=by, title=title, body=body, tags=tags)
    flow = Flow.objects.filter(name=DEMO_FLOW).first()
    if flow is not None:
        return flow
    flow = services.flow_create(
        by=by,
        name=DEMO_FLOW,
        description="Greets web chat visitors, answers from the knowledge base, hands off.",
        inboxes=[inbox.pk],
    )
    services.draft_save(by=by, flow=flow, graph=demo_graph())
    services.flow_publish(by=by, flow=flow, note="Demo flow")
    return Flow.objects.get(pk=flow.pk)
