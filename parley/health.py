"""``/healthz``: database, Redis and a live worker, as JSON with 200 or 503."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from parley.heartbeat import HEARTBEAT_KEY
from parley.heartbeat import redis_client as _redis


def _check_database() -> dict:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _check_redis() -> dict:
    started = time.perf_counter()
    _redis().ping()
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _check_worker() -> dict:
    raw = _redis().get(HEARTBEAT_KEY)
    if raw is None:
        return {"ok": False, "error": "no worker heartbeat yet"}
    beat_at = float(raw.split()[0])
    age = time.time() - beat_at
    ok = age <= settings.PARLEY_HEARTBEAT_MAX_AGE
    result = {"ok": ok, "age_seconds": round(age, 1)}
    if not ok:
        result["error"] = (
            f"last heartbeat {age:.0f}s ago (limit {settings.PARLEY_HEARTBEAT_MAX_AGE}s)"
        )
    return result


@never_cache
@require_GET
def healthz(request) -> JsonResponse:
    checks: dict[str, dict] = {}
    for name, check in (
        ("database", _check_database),
        ("redis", _check_redis),
        ("worker", _check_worker),
    ):
        try:
            checks[name] = check()
        except Exception as exc:  # a failed dependency is a 503, never a 500
            checks[name] = {"ok": False, "error": type(exc).__name__}
    healthy = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
