"""Shared by the bots API, service and page tests: graphs, a JSON client, audit reads."""

from __future__ import annotations

import json

from django.db import connection
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from tests import support

GOOD = {
    "nodes": [
        {"id": "start", "type": "start", "x": 40, "y": 80, "config": {}},
        {"id": "greet", "type": "send", "x": 260, "y": 80, "config": {"text": "Hi there"}},
        {"id": "bye", "type": "end", "x": 480, "y": 80, "config": {"text": "Bye"}},
    ],
    "edges": [
        {"from": "start", "port": "next", "to": "greet"},
        {"from": "greet", "port": "next", "to": "bye"},
    ],
}

# Parses (so it saves) but cannot be published: the "lost" node is unreachable.
UNREACHABLE = {
    "nodes": [
        *GOOD["nodes"],
        {"id": "lost", "type": "send", "x": 0, "y": 300, "config": {"text": "Nobody sees me"}},
    ],
    "edges": GOOD["edges"],
}

INTENTS = {
    "nodes": [
        {"id": "start", "type": "start", "x": 0, "y": 0, "config": {}},
        {
            "id": "route",
            "type": "intent",
            "x": 200,
            "y": 0,
            "config": {
                "intents": [{"name": "orders", "examples": ["where is my order", "track parcel"]}]
            },
        },
        {"id": "human", "type": "handoff", "x": 400, "y": 0, "config": {"note": "help"}},
    ],
    "edges": [
        {"from": "start", "port": "next", "to": "route"},
        {"from": "route", "port": "intent:orders", "to": "human"},
        {"from": "route", "port": "fallback", "to": "human"},
    ],
}


def client(acme, role: str = "marketer"):
    return support.signed_in(acme, f"{role}@{acme.slug}.test")


def call(c, method: str, path: str, body=None, *, raw: bytes | None = None, **extra):
    send = getattr(c, method.lower())
    if raw is not None:
        return send(path, data=raw, content_type="application/json", **extra)
    if body is None:
        return send(path, **extra)
    return send(path, data=json.dumps(body), content_type="application/json", **extra)


def actions(acme, prefix: str = "") -> list[str]:
    with tenant_context(acme):
        rows = list(
            AuditEvent.objects.filter(action__startswith=prefix)
            .order_by("id")
            .values_list("action", flat=True)
        )
    connection.set_schema_to_public()
    return rows


def in_acme(acme, fn):
    with tenant_context(acme):
        result = fn()
    connection.set_schema_to_public()
    return result
