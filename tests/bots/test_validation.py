"""Graph parsing (hostile input refused with a code) and publish validation (each rule,
each problem on its node)."""

from __future__ import annotations

import copy
import json

import pytest

from bots import graph as graphs
from bots import nodes
from bots.graph import GraphError, parse
from bots.validation import Problem, validate

HOSTS = ["api.example.com"]


def node(node_id, node_type, **config):
    return {"id": node_id, "type": node_type, "x": 0, "y": 0, "config": config}


def edge(source, port, target):
    return {"from": source, "port": port, "to": target}


def good_graph():
    return {
        "nodes": [
            node("start", "start"),
            node("ask", "ask", text="Your e-mail?", kind="email", variable="email"),
            node("greet", "send", text="Thanks {{email}}, {{contact.name}}!", buttons=["Orders"]),
            node(
                "route",
                "intent",
                intents=[{"name": "orders", "examples": ["where is my order"]}],
                threshold=0.4,
            ),
            node(
                "lookup", "http", url="https://api.example.com/o/{{email}}", map={"status": "a.b"}
            ),
            node("say", "send", text="Status: {{status}}"),
            node("human", "handoff", note="Customer {{contact.name}} needs help"),
            node("bye", "end", text="Bye"),
        ],
        "edges": [
            edge("start", "next", "ask"),
            edge("ask", "next", "greet"),
            edge("ask", "fallback", "human"),
            edge("greet", "next", "route"),
            edge("route", "intent:orders", "lookup"),
            edge("route", "fallback", "human"),
            edge("lookup", "ok", "say"),
            edge("lookup", "error", "human"),
            edge("say", "next", "bye"),
        ],
    }


def codes(problems: list[Problem]) -> set[tuple[str | None, str]]:
    return {(p.node, p.code) for p in problems}


def test_a_good_graph_has_no_problems():
    assert validate(good_graph(), allowed_hosts=HOSTS) == []


def test_problems_serialise_with_their_node():
    graph = good_graph()
    graph["nodes"][3]["config"]["intents"][0]["examples"] = []
    [problem] = validate(graph, allowed_hosts=HOSTS)
    assert problem.as_dict() == {
        "node": "route",
        "code": "intent_without_examples",
        "message": "Intent orders needs at least one example.",
    }


def test_exactly_one_start():
    graph = good_graph()
    graph["nodes"].append(node("start2", "start"))
    assert ("start2", "extra_start") in codes(validate(graph, allowed_hosts=HOSTS))
    graph = good_graph()
    graph["nodes"] = graph["nodes"][1:]
    graph["edges"] = graph["edges"][1:]
    assert (None, "no_start") in codes(validate(graph, allowed_hosts=HOSTS))


def test_dangling_edges_name_their_node():
    graph = good_graph()
    graph["edges"].append(edge("say", "next", "nowhere"))  # second edge on one port too
    graph["edges"].append(edge("ghost", "next", "bye"))
    graph["edges"].append(edge("bye", "next", "say"))  # an end has no ports
    found = codes(validate(graph, allowed_hosts=HOSTS))
    assert ("say", "edge_to_missing_node") in found
    assert ("say", "edge_duplicate") in found
    assert ("bye", "edge_from_missing_node") in found
    assert ("bye", "edge_bad_port") in found


def test_unreachable_nodes_are_reported():
    graph = good_graph()
    graph["nodes"].append(node("island", "send", text="Nobody gets here"))
    assert ("island", "unreachable") in codes(validate(graph, allowed_hosts=HOSTS))


def test_every_ask_needs_a_way_on():
    graph = good_graph()
    graph["edges"] = [e for e in graph["edges"] if (e["from"], e["port"]) != ("ask", "next")]
    assert ("ask", "ask_no_next") in codes(validate(graph, allowed_hosts=HOSTS))


def test_a_variable_read_on_a_path_where_it_is_unset():
    graph = good_graph()
    # The ask's fallback now goes to the greeting: {{email}} is unset on that path.
    graph["edges"] = [e for e in graph["edges"] if (e["from"], e["port"]) != ("ask", "fallback")]
    graph["edges"].append(edge("ask", "fallback", "greet"))
    found = codes(validate(graph, allowed_hosts=HOSTS))
    assert ("greet", "variable_unset") in found
    # The http node reads {{email}} too, through the same greeting: also reported.
    assert ("lookup", "variable_unset") in found


def test_a_mapped_variable_is_unset_on_the_error_path():
    graph = good_graph()
    graph["edges"] = [e for e in graph["edges"] if (e["from"], e["port"]) != ("lookup", "error")]
    graph["edges"].append(edge("lookup", "error", "say"))
    assert ("say", "variable_unset") in codes(validate(graph, allowed_hosts=HOSTS))


def test_a_variable_never_set_and_a_bad_name():
    graph = good_graph()
    graph["nodes"][2]["config"]["text"] = "Hi {{nobody}} {{Bad-Name}}"
    found = codes(validate(graph, allowed_hosts=HOSTS))
    assert ("greet", "variable_unset") in found
    assert ("greet", "variable_bad_name") in found


def test_a_loop_keeps_what_is_set_on_every_way_round():
    graph = {
        "nodes": [
            node("start", "start"),
            node("setx", "set", variable="x", value="1"),
            node("check", "condition", kind="variable", variable="x", op="eq", value="1"),
            node("again", "send", text="x is {{x}}"),
        ],
        "edges": [
            edge("start", "next", "setx"),
            edge("setx", "next", "check"),
            edge("check", "yes", "again"),
            edge("again", "next", "check"),
        ],
    }
    assert validate(graph, allowed_hosts=()) == []


def test_intents_need_examples_and_unique_names():
    graph = good_graph()
    graph["nodes"][3]["config"]["intents"].append({"name": "orders", "examples": ["x"]})
    graph["nodes"][3]["config"]["intents"].append({"name": "empty", "examples": ["  "]})
    found = codes(validate(graph, allowed_hosts=HOSTS))
    assert ("route", "intent_duplicate") in found
    assert ("route", "intent_without_examples") in found


def test_http_hosts_must_be_allow_listed():
    found = codes(validate(good_graph(), allowed_hosts=["other.example.com"]))
    assert ("lookup", "http_host_not_allowed") in found
    graph = good_graph()
    graph["nodes"][4]["config"]["url"] = "https://{{email}}.example.com/"
    assert ("lookup", "http_bad_url") in codes(validate(graph, allowed_hosts=HOSTS))
    graph["nodes"][4]["config"]["url"] = "ftp://api.example.com/"
    assert ("lookup", "http_bad_url") in codes(validate(graph, allowed_hosts=HOSTS))
    # Upper case and IDNA normalise to the allow-list's form.
    graph["nodes"][4]["config"]["url"] = "https://API.Example.com/x"
    assert validate(graph, allowed_hosts=HOSTS) == []


def test_node_settings_are_checked():
    graph = good_graph()
    graph["nodes"].extend(
        [
            node("r", "ask", text="Code?", kind="regex", pattern="([a-z", variable="code"),
            node("c", "ask", text="Pick", kind="choice", variable="pick"),
            node("slow", "ask", text="Code?", kind="regex", pattern=r"(\w+\s?)+$", variable="s"),
            node(
                "slowc",
                "condition",
                kind="variable",
                variable="message",
                op="matches",
                value="(a*)*b",
            ),
            node("s", "set", value="x"),
            node("t", "condition", kind="time", days=[], **{"from": "25:00", "to": "10:00"}),
            node("m", "send", media_url="http://example.com/a.png"),
        ]
    )
    found = codes(validate(graph, allowed_hosts=HOSTS))
    assert {
        ("r", "ask_bad_pattern"),
        ("slow", "ask_bad_pattern"),
        ("slowc", "condition_bad_pattern"),
        ("c", "ask_no_choices"),
        ("s", "set_no_variable"),
        ("t", "condition_bad_time"),
        ("t", "condition_no_days"),
        ("m", "media_not_https"),
    } <= found


def test_an_unparseable_graph_is_one_problem():
    assert [p.code for p in validate({"nodes": "x"}, allowed_hosts=())] == ["graph_bad_shape"]


# --- hostile input: GraphError with a code, never anything else -----------------------------


def _with(mutate):
    graph = good_graph()
    mutate(graph)
    return graph


HOSTILE = [
    ("not_object", lambda: [], "graph_not_object"),
    ("string", lambda: "nodes", "graph_not_object"),
    ("unknown_key", lambda: {"nodes": [], "edges": [], "x": 1}, "graph_unknown_key"),
    ("nodes_dict", lambda: {"nodes": {}, "edges": []}, "graph_bad_shape"),
    ("node_list", lambda: {"nodes": [[1]], "edges": []}, "node_not_object"),
    (
        "bad_id_nul",
        lambda: {"nodes": [node("a\x00", "start")], "edges": []},
        "node_bad_id",
    ),
    (
        "bad_id_unicode_digits",
        lambda: {"nodes": [node("node٣", "start")], "edges": []},
        "node_bad_id",
    ),
    ("bad_id_newline", lambda: {"nodes": [node("a\n", "start")], "edges": []}, "node_bad_id"),
    ("id_int", lambda: {"nodes": [{"id": 7, "type": "start"}], "edges": []}, "node_bad_id"),
    ("duplicate", lambda: {"nodes": [node("a", "end"), node("a", "end")]}, "node_duplicate_id"),
    ("unknown_type", lambda: {"nodes": [node("a", "exec")]}, "node_unknown_type"),
    ("type_list", lambda: {"nodes": [{"id": "a", "type": ["start"]}]}, "node_unknown_type"),
    (
        "text_nul",
        lambda: _with(lambda g: g["nodes"][2]["config"].update(text="hi\x00")),
        "config_bad_text",
    ),
    (
        "text_surrogate",
        lambda: _with(lambda g: g["nodes"][2]["config"].update(text="hi \ud800")),
        "config_bad_text",
    ),
    (
        "text_number",
        lambda: _with(lambda g: g["nodes"][2]["config"].update(text=12)),
        "config_bad_value",
    ),
    (
        "text_too_long",
        lambda: _with(lambda g: g["nodes"][2]["config"].update(text="x" * 1001)),
        "config_too_long",
    ),
    (
        "unknown_config_key",
        lambda: _with(lambda g: g["nodes"][2]["config"].update(script="alert(1)")),
        "config_unknown_key",
    ),
    (
        "retries_unicode_digit",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(retries="٣")),
        "config_bad_value",
    ),
    (
        "retries_huge",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(retries=10**30)),
        "config_bad_value",
    ),
    (
        "retries_bool",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(retries=True)),
        "config_bad_value",
    ),
    (
        "threshold_nan",
        lambda: _with(lambda g: g["nodes"][3]["config"].update(threshold=float("nan"))),
        "config_bad_value",
    ),
    (
        "threshold_big",
        lambda: _with(lambda g: g["nodes"][3]["config"].update(threshold=1e308)),
        "config_bad_value",
    ),
    (
        "position_inf",
        lambda: _with(lambda g: g["nodes"][0].update(x=float("inf"))),
        "node_bad_position",
    ),
    (
        "position_huge_int",
        lambda: _with(lambda g: g["nodes"][0].update(y=10**400)),
        "node_bad_position",
    ),
    (
        "deep_nesting",
        lambda: _with(lambda g: g["nodes"][2]["config"].update(buttons=_deep(10_000))),
        "config_bad_value",
    ),
    (
        "deep_config",
        lambda: _with(lambda g: g["nodes"][0].update(config=_deep(10_000))),
        "config_not_object",
    ),
    (
        "button_too_long",
        lambda: _with(lambda g: g["nodes"][2]["config"].update(buttons=["x" * 21])),
        "config_too_long",
    ),
    (
        "too_many_buttons",
        lambda: _with(lambda g: g["nodes"][2]["config"].update(buttons=["b"] * 11)),
        "config_too_many",
    ),
    (
        "leave_words_not_list",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(leave_words="agent")),
        "config_bad_value",
    ),
    (
        "leave_words_nul",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(leave_words=["age\x00nt"])),
        "config_bad_text",
    ),
    (
        "leave_words_surrogate",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(leave_words=["\udc00"])),
        "config_bad_text",
    ),
    (
        "leave_words_number",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(leave_words=[10**400])),
        "config_bad_value",
    ),
    (
        "leave_words_too_many",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(leave_words=["w"] * 11)),
        "config_too_many",
    ),
    (
        "leave_words_too_long",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(leave_words=["w" * 61])),
        "config_too_long",
    ),
    (
        "leave_words_nested",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(leave_words=_deep(10_000))),
        "config_bad_value",
    ),
    (
        "variable_unicode",
        lambda: _with(lambda g: g["nodes"][1]["config"].update(variable="émail")),
        "config_bad_variable",
    ),
    (
        "map_not_object",
        lambda: _with(lambda g: g["nodes"][4]["config"].update(map=["a"])),
        "config_bad_value",
    ),
    (
        "edge_port_nul",
        lambda: _with(lambda g: g["edges"].append(edge("say", "n\x00", "bye"))),
        "edge_bad_port",
    ),
    (
        "edge_not_object",
        lambda: _with(lambda g: g["edges"].append("start->bye")),
        "edge_not_object",
    ),
    (
        "ten_thousand_nodes",
        lambda: {"nodes": [node(f"n{i}", "end") for i in range(10_000)], "edges": []},
        "graph_too_many_nodes",
    ),
    (
        "too_many_edges",
        lambda: {"nodes": [], "edges": [edge("a", "next", "b")] * 401},
        "graph_too_many_edges",
    ),
    (
        "too_large",
        lambda: {
            "nodes": [node(f"n{i}", "send", text="x" * 1000) for i in range(100)],
            "edges": [],
        },
        "graph_too_large",
    ),
]


def _deep(depth):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("case", "make", "code"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_graphs_raise_graph_error_with_a_code(case, make, code):
    with pytest.raises(GraphError) as info:
        parse(make())
    assert info.value.code == code
    assert json.dumps(info.value.as_dict())  # serialisable for the API answer
    # validate() reports the same thing as one problem, never raises.
    problems = validate(make(), allowed_hosts=HOSTS)
    assert [p.code for p in problems] == [code]


def test_parse_keeps_what_it_checked():
    graph = parse(good_graph())
    assert list(graph.nodes) == [n["id"] for n in good_graph()["nodes"]]
    assert graph.target("route", "intent:orders") == "lookup"
    assert graph.nodes["ask"].config["retries"] == 2  # the default filled in
    assert parse(graph.as_dict()).as_dict() == graph.as_dict()
    assert graphs.MAX_NODES == 200 and graphs.MAX_EDGES == 400


def test_the_registry_is_open_for_new_node_types():
    def clean(config, node_id):
        return {}

    crm = nodes.NodeType(
        name="crm_lookup_test",
        clean=clean,
        ports=lambda config: ("found", "missing"),
        run=lambda ctx, node: nodes.Step(port="found"),
    )
    nodes.register(crm)
    try:
        graph = {
            "nodes": [node("start", "start"), node("crm", "crm_lookup_test")],
            "edges": [edge("start", "next", "crm")],
        }
        assert validate(graph, allowed_hosts=()) == []
        with pytest.raises(ValueError):
            nodes.register(crm)
    finally:
        nodes.REGISTRY.pop("crm_lookup_test")
    assert ("crm", "node_unknown_type") in codes(validate(copy.deepcopy(graph), allowed_hosts=()))
