"""Hostile input on every bots endpoint: wrong types, NUL, lone surrogates, Unicode
digits, huge numbers, deep nesting, a 10 MB graph → 4xx JSON with a stable code, never
a 500, and nothing stored."""

from __future__ import annotations

import json
import time

import pytest

from bots.models import AllowedHost, Flow, FlowVersion, KnowledgeArticle
from tests.bots.api_support import GOOD, call, client, in_acme

pytestmark = pytest.mark.django_db


def _deep(levels: int):
    value: object = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


def _raw(body) -> bytes:
    return json.dumps(body).encode("utf-8", "surrogatepass")


def _state(acme) -> tuple:
    def read():
        return (
            list(
                Flow.objects.order_by("id").values_list(
                    "name", "description", "keywords", "enabled", "trigger"
                )
            ),
            list(FlowVersion.objects.order_by("id").values_list("number", "status", "graph")),
            list(
                KnowledgeArticle.objects.order_by("id").values_list(
                    "title", "body", "tags", "published"
                )
            ),
            list(AllowedHost.objects.order_by("id").values_list("host", "note")),
        )

    return in_acme(acme, read)


NODE_10MB = {"id": "big", "type": "send", "config": {"text": "x" * 900}}
TEN_MB_GRAPH = {
    "nodes": [GOOD["nodes"][0]] + [{**NODE_10MB, "id": f"n{i}"} for i in range(11_000)],
    "edges": [],
}

# (method, path template, bodies): {flow}, {article} are filled in.
CASES: list[tuple[str, str, dict]] = [
    (
        "POST",
        "/api/v1/flows/",
        {
            "NUL name": {"name": "a\x00b"},
            "surrogate name": {"name": "\ud800"},
            "number name": {"name": 5},
            "list name": {"name": ["x"]},
            "long name": {"name": "x" * 81},
            "bad trigger": {"name": "T", "trigger": "always"},
            "keywords string": {"name": "T", "keywords": "hi"},
            "keywords numbers": {"name": "T", "keywords": [1, 2]},
            "too many keywords": {"name": "T", "keywords": [f"k{i}" for i in range(21)]},
            "inbox unicode digits": {"name": "T", "inboxes": ["١٢"]},
            "inbox superscript": {"name": "T", "inboxes": ["²"]},
            "inbox huge": {"name": "T", "inboxes": [10**30]},
            "inbox 2**62 missing": {"name": "T", "inboxes": [2**62]},
            "inbox bool": {"name": "T", "inboxes": [True]},
            "enabled string": {"name": "T", "enabled": "yes"},
            "enabled number": {"name": "T", "enabled": 1},
            "deep": {"name": "T", "description": _deep(100)},
            "NUL key": {"name": "T", "x\x00": 1},
        },
    ),
    (
        "PATCH",
        "/api/v1/flows/{flow}/",
        {
            "NUL description": {"description": "\x00"},
            "number name": {"name": 12},
            "bad trigger": {"trigger": 3},
            "keyword trigger without keywords": {"trigger": "keyword"},
            "intent name bad": {"trigger": "intent", "trigger_intent": "Orders!"},
            "enabled null": {"enabled": None},
            "huge": {"name": 10**40},
        },
    ),
    (
        "PUT",
        "/api/v1/flows/{flow}/draft/",
        {
            "graph list": {"graph": []},
            "graph string": {"graph": "{}"},
            "graph null": {"graph": None},
            "no graph": {},
            "unknown key": {"graph": {"nodes": [], "edges": [], "x": 1}},
            "node not object": {"graph": {"nodes": [1], "edges": []}},
            "NUL in text": {
                "graph": {
                    "nodes": [{"id": "s", "type": "start", "config": {"a": "\x00"}}],
                    "edges": [],
                }
            },
            "surrogate id": {"graph": {"nodes": [{"id": "\udfff", "type": "start"}], "edges": []}},
            "huge x": {
                "graph": {"nodes": [{"id": "s", "type": "start", "x": 10**30}], "edges": []}
            },
            "big x": {"graph": {"nodes": [{"id": "s", "type": "start", "x": 2**62}], "edges": []}},
            "bool x": {"graph": {"nodes": [{"id": "s", "type": "start", "x": True}], "edges": []}},
            "unicode digit timeout": {
                "graph": {
                    "nodes": [{"id": "h", "type": "http", "config": {"timeout": "٥"}}],
                    "edges": [],
                }
            },
            "deep config": {
                "graph": {"nodes": [{"id": "s", "type": "send", "config": _deep(40)}], "edges": []}
            },
            "deep but parseable depth": {
                "graph": {
                    "nodes": [{"id": "s", "type": "send", "config": {"text": _deep(20)}}],
                    "edges": [],
                }
            },
            "too many nodes": {
                "graph": {
                    "nodes": [{"id": f"n{i}", "type": "end"} for i in range(201)],
                    "edges": [],
                }
            },
            "bad base stamp": {"graph": GOOD, "base_updated_at": "yesterday"},
            "stamp number": {"graph": GOOD, "base_updated_at": 12},
        },
    ),
    (
        "POST",
        "/api/v1/flows/{flow}/validate/",
        {
            "graph list": {"graph": [1]},
            "graph with NUL": {"graph": {"nodes": [{"id": "a\x00"}], "edges": []}},
            "deep": {"graph": _deep(60)},
        },
    ),
    (
        "POST",
        "/api/v1/flows/{flow}/publish/",
        {
            "note number": {"note": 5},
            "note NUL": {"note": "\x00"},
            "note long": {"note": "x" * 201},
        },
    ),
    (
        "POST",
        "/api/v1/flows/{flow}/rollback/",
        {
            "number unicode": {"number": "١"},
            "number superscript": {"number": "¹"},
            "number huge": {"number": 10**25},
            "number too big": {"number": 2**40},
            "number negative": {"number": -1},
            "number list": {"number": [1]},
            "number float": {"number": 1.5},
            "no number": {},
        },
    ),
    (
        "POST",
        "/api/v1/flows/{flow}/simulate/",
        {
            "messages string": {"messages": "hi"},
            "message NUL": {"messages": ["\x00"]},
            "message surrogate": {"messages": ["\ud800"]},
            "graph string": {"messages": ["hi"], "graph": "x"},
            "graph unparseable": {"messages": ["hi"], "graph": {"nodes": "x"}},
        },
    ),
    (
        "POST",
        "/api/v1/articles/",
        {
            "NUL title": {"title": "\x00", "body": "b"},
            "surrogate body": {"title": "t", "body": "\udc00"},
            "number title": {"title": 1, "body": "b"},
            "empty title": {"title": " ", "body": "b"},
            "body too long": {"title": "t", "body": "x" * 20001},
            "tags string": {"title": "t", "body": "b", "tags": "a,b"},
            "tags dict": {"title": "t", "body": "b", "tags": {"a": 1}},
            "tag odd": {"title": "t", "body": "b", "tags": ["<script>"]},
            "too many tags": {"title": "t", "body": "b", "tags": [f"t{i}" for i in range(21)]},
            "published string": {"title": "t", "body": "b", "published": "true"},
            "deep": {"title": "t", "body": _deep(50)},
        },
    ),
    (
        "PATCH",
        "/api/v1/articles/{article}/",
        {
            "NUL body": {"body": "\x00"},
            "number published": {"published": 0},
            "huge": {"title": 10**40},
        },
    ),
    (
        "POST",
        "/api/v1/bot-hosts/",
        {
            "NUL": {"host": "a\x00.example"},
            "number": {"host": 127001},
            "private": {"host": "127.0.0.1"},
            "port": {"host": "api.example.com:444"},
            "unicode digits": {"host": "١٢٧.0.0.1"},
            "long": {"host": "a" * 301},
            "no host": {},
        },
    ),
]

FLAT = [
    pytest.param(method, path, body, id=f"{method} {path} {name}")
    for method, path, bodies in CASES
    for name, body in bodies.items()
]


@pytest.fixture
def objects(acme):
    marketer = client(acme)
    flow = call(marketer, "POST", "/api/v1/flows/", {"name": "Target"}).json()
    assert (
        call(marketer, "PUT", f"/api/v1/flows/{flow['id']}/draft/", {"graph": GOOD}).status_code
        == 200
    )
    assert call(marketer, "POST", f"/api/v1/flows/{flow['id']}/publish/", {}).status_code == 200
    article = call(marketer, "POST", "/api/v1/articles/", {"title": "T", "body": "B"}).json()
    return {"flow": flow["id"], "article": article["id"]}


@pytest.mark.parametrize(("method", "path", "body"), FLAT)
def test_hostile_bodies_are_refused_with_a_code_and_nothing_is_stored(
    acme, objects, method, path, body, settings
):
    settings.PARLEY_OUTBOUND_ALLOW_PRIVATE = False
    role = "admin" if "bot-hosts" in path else "marketer"
    c = client(acme, role)
    url = path.format(**objects)
    before = _state(acme)
    started = time.monotonic()
    response = call(c, method, url, raw=_raw(body))
    assert time.monotonic() - started < 3
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert response.json()["code"] in (
        "invalid",
        "parse_error",
        "graph_invalid",
        "graph_too_large",
        "not_found",
    ), response.json()
    if "simulate" not in path and "validate" not in path:
        assert _state(acme) == before


ONE_MB_GRAPH = {"nodes": TEN_MB_GRAPH["nodes"][:1100], "edges": []}


def test_a_1_mb_graph_is_refused_as_too_large(acme, objects):
    c = client(acme)
    raw = _raw({"graph": ONE_MB_GRAPH})
    assert 2**20 < len(raw) < 2 * 2**20
    before = _state(acme)
    response = call(c, "PUT", f"/api/v1/flows/{objects['flow']}/draft/", raw=raw)
    assert response.status_code == 400 and response.json()["code"] == "graph_too_large"
    assert _state(acme) == before


def test_a_10_mb_graph_is_refused_quickly_and_not_stored(acme, objects):
    c = client(acme)
    raw = _raw({"graph": TEN_MB_GRAPH})
    assert len(raw) > 10 * 2**20
    before = _state(acme)
    started = time.monotonic()
    response = call(c, "PUT", f"/api/v1/flows/{objects['flow']}/draft/", raw=raw)
    elapsed = time.monotonic() - started
    assert response.status_code == 413, response.content[:200]
    assert response.json()["code"] == "too_large"
    assert elapsed < 5, elapsed
    assert _state(acme) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/flows/99999999999999999999999/",
        "/api/v1/flows/9223372036854775808/draft/",
        "/api/v1/flows/{flow}/versions/99999999999/",
        "/api/v1/flows/{flow}/versions/1/diff/?against=99999999999999999999",
        "/api/v1/flows/{flow}/versions/1/diff/?against=%00",
        "/api/v1/flows/{flow}/versions/1/diff/?against=draft%ED%A0%80",
        "/api/v1/articles/99999999999999999999999/",
        "/api/v1/articles/?q=%00",
        "/api/v1/articles/?q=" + "x" * 300,
    ],
)
def test_hostile_paths_and_queries_answer_4xx_with_a_code(acme, objects, path):
    response = call(client(acme), "GET", path.format(**objects))
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert response.json()["code"] in ("invalid", "not_found", "no_draft"), response.json()
