"""The HTTP request node: allow-listed hosts only, through parley.outbound (the engine's)."""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import quote, urlsplit

from django.conf import settings

from bots import schema
from bots.nodes.registry import (
    NodeError,
    NodeType,
    Step,
    reads_texts,
    register,
)
from bots.schema import GraphError, Problem
from parley.validation import text_problem

# --- HTTP request --------------------------------------------------------------------------

MAP_PATH = re.compile(r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,9}", re.ASCII)
MAX_MAPPED_CHARS = 1000


class HttpFailure(Exception):
    """The call failed (network, status, not JSON): the node takes its ``error`` port."""


def _clean_http(config, node):
    config = schema.config_keys(
        config, node=node, allowed=frozenset({"method", "url", "body", "map", "timeout"})
    )
    mapping = config.get("map")
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, dict):
        raise GraphError("config_bad_value", "map is an object of variable: path.", node)
    if len(mapping) > 20:
        raise GraphError("config_too_many", "map has at most 20 entries.", node)
    clean_map = {}
    for name, path in mapping.items():
        name = schema.variable_name(name, node=node, key="map", required=True)
        path = schema.text(path, node=node, key="map", max_length=200)
        clean_map[name] = path
    return {
        "method": schema.choice(
            config.get("method"), node=node, key="method", options=("GET", "POST"), default="GET"
        ),
        "url": schema.text(config.get("url"), node=node, key="url", max_length=1000),
        "body": schema.text(config.get("body"), node=node, key="body", max_length=4000),
        "map": clean_map,
        "timeout": schema.integer(
            config.get("timeout"), node=node, key="timeout", minimum=1, maximum=10, default=5
        ),
    }


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(url: str) -> str | None:
    """The lower-case (IDNA) host of an https URL whose host has no variables, else None.
    Outside production a loopback host may be called over http (a service on this
    machine, the tests' local server), as for the AI provider's base URL."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if not host or "{" in host or parts.username or parts.password:
        return None
    if parts.scheme != "https" and not (
        parts.scheme == "http" and not settings.PRODUCTION and _loopback(host)
    ):
        return None
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def _check_http(node, hosts) -> list[Problem]:
    config, out = node.config, []
    host = url_host(config["url"])
    if host is None:
        out.append(
            Problem(
                node.id,
                "http_bad_url",
                "The URL is an https link with a fixed host (no variables in it).",
            )
        )
    elif host not in hosts:
        out.append(
            Problem(
                node.id,
                "http_host_not_allowed",
                f"{host} is not on the allowed hosts list (ask an admin to add it).",
            )
        )
    for path in config["map"].values():
        if not MAP_PATH.fullmatch(path):
            out.append(Problem(node.id, "http_bad_map", "A map path looks like a.b.0.c."))
            break
    if config["method"] == "POST" and config["body"].strip():
        # Variables go in as JSON strings, so only the shape around them is checked.
        sample = schema.PLACEHOLDER.sub("0", config["body"])
        try:
            json.loads(sample)
        except ValueError:
            out.append(Problem(node.id, "http_bad_body", "The body is not JSON."))
    return out


def _json_path(document, path: str) -> str:
    value = document
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isascii() and part.isdigit() and len(part) < 6:
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            value = None
        if value is None:
            return ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif not isinstance(value, str):
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return "" if text_problem(value) else value[:MAX_MAPPED_CHARS]


def _run_http(ctx, node) -> Step:
    config = node.config
    url = schema.PLACEHOLDER.sub(lambda m: quote(ctx.lookup(m.group(1)), safe=""), config["url"])
    host = url_host(url)
    if host is None or host not in ctx.allowed_hosts:
        raise NodeError("http_host_not_allowed")
    body = None
    if config["method"] == "POST" and config["body"].strip():
        rendered = schema.PLACEHOLDER.sub(
            lambda m: json.dumps(ctx.lookup(m.group(1)))[1:-1], config["body"]
        )
        try:
            body = json.loads(rendered)
        except ValueError:
            raise NodeError("http_bad_body") from None
    try:
        document = ctx.http(config["method"], url, body, config["timeout"])
    except HttpFailure:
        return Step(port="error")
    for name, path in config["map"].items():
        ctx.variables[name] = _json_path(document, path)
    return Step(port="ok")


register(
    NodeType(
        name="http",
        clean=_clean_http,
        ports=lambda config: ("ok", "error"),
        run=_run_http,
        reads=lambda config: reads_texts(config["url"], config["body"]),
        writes=lambda config: list(config["map"]),
        writes_on=("ok",),
        check=_check_http,
        unconnected={"error": ("http_error", "")},
    )
)
