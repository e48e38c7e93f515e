"""simulate(): the engine's runners on an in-memory run; no database, no network."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import override_settings

from bots.engine import simulate
from bots.graph import GraphError
from bots.knowledge import Article


def node(node_id, node_type, **config):
    return {"id": node_id, "type": node_type, "config": config}


def edge(source, port, target):
    return {"from": source, "port": port, "to": target}


GRAPH = {
    "nodes": [
        node("start", "start"),
        node("hi", "send", text="Hi {{contact.name}}!", buttons=["Orders", "Hours"]),
        node("ask", "ask", text="E-mail?", kind="email", variable="email", retries=1),
        node("what", "ask", text="How can I help?", variable="topic"),
        node(
            "route",
            "intent",
            intents=[
                {"name": "orders", "examples": ["where is my order", "track my parcel"]},
                {"name": "hours", "examples": ["when are you open", "opening hours"]},
            ],
        ),
        node("kb", "kb_answer"),
        node("orders", "end", text="Orders for {{email}}"),
        node("call", "http", url="https://api.example.com/x", map={"status": "a"}),
        node("human", "handoff", note="{{email}} needs a person"),
    ],
    "edges": [
        edge("start", "next", "hi"),
        edge("hi", "next", "ask"),
        edge("ask", "next", "what"),
        edge("what", "next", "route"),
        edge("ask", "fallback", "human"),
        edge("route", "intent:orders", "call"),
        edge("call", "ok", "orders"),
        edge("route", "intent:hours", "kb"),
    ],
}
ARTICLES = [Article(1, "Opening hours", "We are open from 9 to 17 on weekdays.", ("shop",))]


@pytest.mark.django_db
def test_a_simulation_reports_transcript_path_variables_and_outcome(django_assert_num_queries):
    with django_assert_num_queries(0):
        result = simulate(
            GRAPH,
            ["hello", "ada@example.com", "where is my ordr?"],
            articles=ARTICLES,
            allowed_hosts=["api.example.com"],
            contact_name="Ada",
        ).as_dict()
    assert result["transcript"] == [
        {"from": "customer", "text": "hello", "buttons": []},
        {"from": "bot", "text": "Hi Ada!", "buttons": ["Orders", "Hours"]},
        {"from": "bot", "text": "E-mail?", "buttons": []},
        {"from": "customer", "text": "ada@example.com", "buttons": []},
        {"from": "bot", "text": "How can I help?", "buttons": []},
        {"from": "customer", "text": "where is my ordr?", "buttons": []},
        {
            "from": "system",
            "text": "HTTP GET api.example.com: not called in the simulator.",
            "buttons": [],
        },
        {"from": "bot", "text": "Orders for ada@example.com", "buttons": []},
        {"from": "system", "text": "The flow ended.", "buttons": []},
    ]
    assert [(p["node"], p["type"], p["port"]) for p in result["path"]] == [
        ("start", "start", "next"),
        ("hi", "send", "next"),
        ("ask", "ask", None),
        ("ask", "ask", "next"),
        ("what", "ask", None),
        ("what", "ask", "next"),
        ("route", "intent", "intent:orders"),
        ("call", "http", "ok"),
        ("orders", "end", None),
    ]
    assert result["variables"] == {
        "email": "ada@example.com",
        "topic": "where is my ordr?",
        "status": "",
    }
    assert (result["outcome"], result["reason"]) == ("completed", "end_node")
    json.dumps(result)


def test_the_ask_waits_for_the_next_message_and_a_simulation_can_stop_midway():
    result = simulate(GRAPH, ["hello"]).as_dict()
    assert result["outcome"] == "waiting" and result["path"][-1]["node"] == "ask"


def test_kb_answers_from_the_articles_passed_in_and_hands_off_when_unknown():
    answered = simulate(GRAPH, ["hi", "a@b.co", "when are you open?"], articles=ARTICLES)
    assert "9 to 17" in answered.transcript[-2]["text"]
    unknown = simulate(GRAPH, ["hi", "a@b.co", "when are you open?"], articles=[])
    assert (unknown.outcome, unknown.reason) == ("handoff", "kb_unknown")


def test_ask_fallback_hands_off_with_the_note():
    result = simulate(GRAPH, ["hi", "nope", "still nope"])
    assert (result.outcome, result.reason) == ("handoff", "handoff_node")
    assert (
        result.transcript[-1]["text"] == "Handed to a person (handoff_node). Note:  needs a person"
    )


def test_simulations_are_deterministic():
    messages = ["hello", "ada@example.com", "when are you open"]
    first = simulate(GRAPH, messages, articles=ARTICLES).as_dict()
    assert simulate(GRAPH, messages, articles=ARTICLES).as_dict() == first


@override_settings(BOTS_STEP_CAP=5)
def test_the_step_cap_applies_in_the_simulator():
    loop = {
        "nodes": [node("start", "start"), node("a", "send", text="again")],
        "edges": [edge("start", "next", "a"), edge("a", "next", "a")],
    }
    result = simulate(loop, ["hi"])
    assert (result.outcome, result.reason) == ("step_cap", "step_cap")
    assert len(result.path) == 5


def test_time_conditions_use_the_given_clock():
    graph = {
        "nodes": [
            node("start", "start"),
            node("c", "condition", kind="time", days=[0], **{"from": "09:00", "to": "17:00"}),
            node("y", "end", text="open"),
            node("n", "end", text="closed"),
        ],
        "edges": [edge("start", "next", "c"), edge("c", "yes", "y"), edge("c", "no", "n")],
    }
    monday = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
    assert simulate(graph, ["x"], now=monday).transcript[1]["text"] == "open"
    assert (
        simulate(graph, ["x"], now=monday + dt.timedelta(hours=8)).transcript[1]["text"] == "closed"
    )


def test_hostile_messages_and_graphs():
    weird = ["\x00", "\ud800", 12, None, "x" * 100_000]
    result = simulate(GRAPH, weird)  # never raises for what a person typed
    assert result.outcome in ("handoff", "waiting")
    with pytest.raises(GraphError):
        simulate({"nodes": "x"}, ["hi"])
