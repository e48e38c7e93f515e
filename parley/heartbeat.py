"""The workers' heartbeat in Redis, which ``/healthz`` reads.

Apart from ``parley.health`` (a view) so that the Celery app, which every
``import parley…`` loads, pulls in no HTTP or ORM machinery: channel adapters
stay importable without Django's models (tests/connectors/meta/test_contract.py).
"""

from __future__ import annotations

import socket
import time

import redis
from django.conf import settings

HEARTBEAT_KEY = "parley:worker:heartbeat"


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def record_heartbeat() -> None:
    """Called by every worker at start and by the beat-driven heartbeat task."""
    redis_client().set(HEARTBEAT_KEY, f"{time.time():.3f} {socket.gethostname()}", ex=3600)
