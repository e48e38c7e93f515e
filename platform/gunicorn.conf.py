"""Gunicorn settings for Parley's web process.

    gunicorn -c platform/gunicorn.conf.py parley.wsgi:application

Every knob an operator may turn comes from the environment; a bad value stops the
process at start-up with a message naming the variable.

- WEB_CONCURRENCY           worker processes (default 2 x cores + 1, at most 12)
- GUNICORN_THREADS          threads per worker (default 4)
- GUNICORN_TIMEOUT          seconds a worker may be silent before it is restarted (30)
- GUNICORN_GRACEFUL_TIMEOUT seconds to finish in-flight requests on shutdown (30)
- GUNICORN_KEEPALIVE        seconds to hold an idle keep-alive connection (5)
- GUNICORN_MAX_REQUESTS     requests a worker serves before it is replaced (10000,
                            +10 % jitter; 0: never)
- GUNICORN_LOG_LEVEL        error log level (info)
- GUNICORN_REUSE_PORT       1: a listening socket per worker (SO_REUSEPORT), the
                            kernel spreads connections over them; 0: one shared
                            socket (default 1 on Linux, 0 elsewhere)
- FORWARDED_ALLOW_IPS       addresses/networks of the TLS edge, trusted for
                            X-Forwarded-Proto (default 127.0.0.1,::1)

Each worker holds up to ``threads`` database connections: size PostgreSQL's
max_connections (or the psycopg pool) for web containers x workers x threads.

This file lives in ``platform/``, which is deliberately not a Python package
(a package named ``platform`` would shadow the standard library). Gunicorn loads it
by path.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from gunicorn.glogging import Logger


def _env_int(name: str, default: int, *, minimum: int = 1, maximum: int | None = None) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    # ASCII digits only: int() would also take "١٠" (Arabic-Indic digits) or "1_0".
    if not re.fullmatch(r"-?[0-9]{1,9}", raw):
        raise SystemExit(f"gunicorn.conf.py: {name}={raw!r} is not an integer.")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise SystemExit(f"gunicorn.conf.py: {name}={value} must be at least {minimum}{upper}.")
    return value


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw not in ("0", "1"):
        raise SystemExit(f"gunicorn.conf.py: {name}={raw!r} must be 0 or 1.")
    return raw == "1"


def _cores() -> int:
    # sched_getaffinity honours a container's cpuset; cpu_count() would not.
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and other hosts without it
        return os.cpu_count() or 1


MAX_DEFAULT_WORKERS = 12

# --- server socket -------------------------------------------------------------
bind = "0.0.0.0:8000"
backlog = 2048
# One listening socket per worker, and the kernel hashes each new connection to one
# of them. On one shared socket, whichever worker wakes first accepts, and the edge's
# keep-alive connections (nginx: keepalive 32) stay with the worker that accepted
# them: bench/webhooks.py found all 16 of its connections on one of three workers in
# about one run in three, and that worker's GIL then capped the whole server at one
# core (webhooks: ~315/s instead of ~520/s; docs/scaling.md, round seven). On Linux
# only: elsewhere SO_REUSEPORT does not spread connections. A worker that exits
# (recycled, below) closes its socket; connections queued on it but not yet accepted
# move to another worker's only where net.ipv4.tcp_migrate_req=1 (docker-compose.yml
# sets it for the web container), and are reset elsewhere.
reuse_port = _env_flag("GUNICORN_REUSE_PORT", sys.platform == "linux")

# --- workers -------------------------------------------------------------------
workers = _env_int("WEB_CONCURRENCY", min(2 * _cores() + 1, MAX_DEFAULT_WORKERS))
worker_class = "gthread"
threads = _env_int("GUNICORN_THREADS", 4, maximum=64)
# Recycle workers now and then so a slow leak cannot grow without bound; the jitter
# keeps them from all restarting at once. Not too often: a new worker imports the
# whole project (about 3 s of a core here), and at 1,000 requests a webhook-heavy
# instance restarted each worker every few seconds (bench/webhooks.py at 200/s: a
# restart every 5 s, each one a latency spike for the requests queued behind it).
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 10_000, minimum=0)
max_requests_jitter = max_requests // 10
# The heartbeat file on tmpfs: on the container's overlay filesystem fchmod can
# block a worker long enough to get it killed. Gunicorn creates it with mkstemp.
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None

# --- timeouts ------------------------------------------------------------------
# The edge gives up after 60 s (proxy_read_timeout); a worker silent for longer than
# GUNICORN_TIMEOUT is killed before that, so the client gets a 502 rather than a hang.
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Longer than the edge's upstream keepalive_timeout (4 s), so nginx always closes an
# idle connection first and never sends a request into one gunicorn is closing.
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)

# --- limits (gunicorn's defaults, stated so nobody raises them by accident) --------
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# --- the proxy in front ----------------------------------------------------------
# Only the edge may tell us the original scheme. Compose sets FORWARDED_ALLOW_IPS to
# the edge network's subnet; anything else is treated as a plain-HTTP client.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# One header, the one the edge sets (and overwrites): X-Forwarded-Proto: https.
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
# Parley is served at the root: no proxy may move SCRIPT_NAME or PATH_INFO.
forwarder_headers = ""
# Headers with underscores are dropped rather than folded into look-alikes.
header_map = "drop"

# --- process -------------------------------------------------------------------
proc_name = "parley-web"
# The runtime control socket would live under $HOME, which is read-only in the
# image; nobody needs to resize a container's workers by hand.
control_socket_disable = True

# --- logging -------------------------------------------------------------------
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Method, path without the query string, status, duration, request id. Never the
# query string, the raw request line, the referrer, cookies or other headers:
# those can carry tokens and personal data. See ParleyLogger, which enforces it
# and also redacts the paths that carry a one-time token.
access_log_format = (
    "method=%(m)s path=%(U)s status=%(s)s duration_ms=%(M)s request_id=%({x-request-id}i)s"
)

# Characters that could forge a log line or break the key=value format.
_UNSAFE = re.compile(r'[\x00-\x20\x7f-\x9f"\\]')

# Paths that carry a secret: one-time activation / password-reset links
# (/accounts/activate/<uidb64>/<token>/) and any segment shaped like a Django
# token-generator token (<timestamp base36>-<32 hex>). The edge redacts the same
# paths in its own log (map $parley_log_path in platform/nginx/nginx.conf).
_SECRET_PATHS = (
    (re.compile(r"(/(?:activate|reset)/)[^/]+/[^/]+"), r"\1[redacted]/[redacted]"),
    (re.compile(r"/[0-9a-z]{1,13}-[0-9a-f]{32}(?=/|$)"), "/[redacted]"),
)

# The only atoms an access log line may use. The request line (r), query string (q),
# referrer (f), user agent (a), remote user (u), other headers and environ entries
# are not offered at all, so editing access_log_format cannot leak them.
_ALLOWED_ATOMS = ("m", "U", "s", "M", "D", "L", "T", "H", "b", "B", "p", "t", "{x-request-id}i")
_ESCAPED_ATOMS = ("m", "U", "{x-request-id}i")


def _redact_path(path: object) -> object:
    if not isinstance(path, str):
        return path
    for pattern, replacement in _SECRET_PATHS:
        path = pattern.sub(replacement, path)
    return path


def _escape(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    if not text:
        return "-"
    return _UNSAFE.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


class ParleyLogger(Logger):
    """Gunicorn's logger with an allow-list of access-log atoms, escaped."""

    def atoms(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any
    ) -> dict[str, Any]:
        every = super().atoms(resp, req, environ, request_time)
        allowed = {key: every[key] for key in _ALLOWED_ATOMS if key in every}
        allowed["U"] = _redact_path(allowed.get("U"))
        for key in _ESCAPED_ATOMS:
            allowed[key] = _escape(allowed.get(key))
        return allowed


logger_class = ParleyLogger
