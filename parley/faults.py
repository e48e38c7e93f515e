"""Which errors mean "a service we depend on is down for a moment".

PostgreSQL restarting, Redis restarting, the broker refusing a message: the
request, task or beat tick that met one should be answered 503 with
``Retry-After``, retried or skipped, never turned into a 500 or a dead process.
Everything else is a bug and keeps its 500. One list, used by the web
middleware (:mod:`parley.middleware`), beat (:mod:`parley.beat`) and tasks
(:mod:`parley.celery`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Literal

import kombu.exceptions
import psycopg
import redis.exceptions
from django.db import InterfaceError, OperationalError, connections

Service = Literal["database", "redis", "broker"]

# django.db wraps psycopg's errors; psycopg's own are listed for code that
# talks to it directly (dbroles, health checks outside Django's wrapper).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # includes BusyLoadingError (Redis still loading its data)
    redis.exceptions.TimeoutError,
)
# Raised by Celery's publish after its own retries: the broker is unreachable.
BROKER_ERRORS: tuple[type[BaseException], ...] = (kombu.exceptions.OperationalError,)
TRANSIENT_ERRORS = DATABASE_ERRORS + REDIS_ERRORS + BROKER_ERRORS


def unavailable_service(exc: BaseException | None) -> Service | None:
    """The service whose outage caused ``exc`` (or what it was raised from), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DATABASE_ERRORS):
            return "database"
        if isinstance(exc, REDIS_ERRORS):
            return "redis"
        if isinstance(exc, BROKER_ERRORS):
            return "broker"
        # Code that catches an outage and raises its own error keeps the cause.
        exc = exc.__cause__ or exc.__context__
    return None


def close_broken_connections() -> None:
    """Drop database connections that no longer work, so the next use reconnects.

    Healthy connections are left alone (a test's open transaction among them);
    django-tenants sets the search_path again on the new connection.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        usable = False
        with contextlib.suppress(Exception):
            usable = conn.is_usable()
        if not usable:
            with contextlib.suppress(Exception):
                conn.close()


class OutageTracebackFilter(logging.Filter):
    """One warning line instead of an error with a traceback for an outage.

    For loggers outside our code that log every failed attempt with its
    traceback (beat's scheduler: one per due entry, every tick, while Redis is
    down). Other records pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        service = unavailable_service(exc)
        if service is not None:
            record.msg, record.args = f"{service} unavailable: {record.getMessage()}", ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
