"""Benchmark: what bearer-token authentication costs per API request. Prints one JSON object.

Runs in its own database (``bench_parley_auth``, recreated) with one tenant and
an agent, as the app role like web processes. Every request goes through the
whole Django stack (all middleware, tenant resolution by host, DRF) with the
test Client, in process. Three tiny DRF views, registered for the benchmark
only, do the same work — one ``SELECT 1`` in the tenant's schema, the least
any tenant endpoint does (so the baseline, too, pays for setting the
connection's ``search_path``) — and return the same ``{"ok": true}``:

* ``open``: no authentication, no permission, no throttle — the baseline;
* ``jwt``: ``TenantJWTAuthentication`` + the policy-table permission
  (``HasPolicyPermission``, ``inbox.use``), no throttle: signature and claims
  check, the revocation epoch and family flag (one Redis round trip), the user
  row (one query), the permission;
* ``jwt_default_stack``: what every API view gets by default — the JWT and
  session authenticators, the permission, and the per-user and per-tenant rate
  limits (one Redis round trip for both; rates raised so nothing is refused).

Requests alternate between the views (``--requests`` each, after a warm-up) so
drift hits all of them alike. ``overhead_ms`` is ``jwt - open`` (target:
0.5 ms or less); ``rate_limits_ms`` is ``jwt_default_stack - jwt``. The
``components_us`` figures time the parts on their own, in a tight loop outside
any request (warm caches: inside a request each part costs more).

    python bench/auth.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import migrate_and_create, prepare, use_role  # noqa: E402

BENCH_DB = "bench_parley_auth"
SLUG = "authbench"
HOST = f"{SLUG}.localhost"


def _figures(samples_ns: list[int]) -> dict:
    ms = [s / 1e6 for s in samples_ns]
    return {"p50_ms": round(statistics.median(ms), 4), "mean_ms": round(statistics.fmean(ms), 4)}


def _bench_urls():
    """The tenant URLconf plus the three benchmark views."""
    from django.db import connection
    from django.urls import path
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from accounts.authentication import TenantJWTAuthentication
    from accounts.permissions import HasPolicyPermission
    from accounts.policy import Perm
    from parley import urls

    def body():
        # The least any tenant endpoint does: one statement in the tenant's schema
        # (the first one of a request also sets the connection's search_path).
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Response({"ok": True})

    class Open(APIView):
        authentication_classes: list = []
        permission_classes = [AllowAny]
        throttle_classes: list = []

        def get(self, request):
            return body()

    class Jwt(Open):
        authentication_classes = [TenantJWTAuthentication]
        permission_classes = [HasPolicyPermission]
        required_permission = Perm.INBOX_USE

    class JwtDefaultStack(APIView):  # DRF defaults from settings: authenticators, throttles
        permission_classes = [HasPolicyPermission]
        required_permission = Perm.INBOX_USE

        def get(self, request):
            return body()

    module = types.ModuleType("bench_auth_urls")
    module.urlpatterns = [
        path("bench/open/", Open.as_view()),
        path("bench/jwt/", Jwt.as_view()),
        path("bench/jwt-default/", JwtDefaultStack.as_view()),
        *urls.urlpatterns,
    ]
    sys.modules["bench_auth_urls"] = module
    return "bench_auth_urls"


def _forget_redis_keys(schema: str) -> None:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(match=f"{schema}:*"):
        client.delete(key)


def _components(raw: str, user_id: int, rounds: int) -> dict:
    from django.contrib.auth import get_user_model

    from accounts import revocation, tokens
    from accounts.throttles import get_raw

    def each(fn) -> float:
        fn()
        started = time.perf_counter_ns()
        for _ in range(rounds):
            fn()
        return round((time.perf_counter_ns() - started) / rounds / 1000, 1)

    family = tokens.TenantAccessToken(raw)[tokens.FAMILY_CLAIM]
    keys = [
        revocation.epoch_key(user_id),
        tokens.family_revoked_key(family),
        tokens.family_live_key(family),
        tokens.snapshot_key(user_id),
    ]
    from django.db import connection

    from accounts.throttles import redis_client

    def select_1():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    return {
        # The machine's round trips, for scale: everything below includes them.
        "redis_ping": each(redis_client().ping),
        "postgres_select_1": each(select_1),
        "verify_signature_and_claims": each(lambda: tokens.TenantAccessToken(raw)),
        "redis_epoch_family_and_user_snapshot_one_round_trip": each(lambda: get_raw(keys)),
        "user_row_query": each(lambda: tokens.user_by_id(user_id)),
        "user_row_query_through_orm": each(lambda: get_user_model().objects.get(pk=user_id)),
        "authenticate_access_total": each(lambda: tokens.authenticate_access(raw)),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    prepare(BENCH_DB)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client, override_settings
    from django_tenants.utils import tenant_context

    from accounts.models import SecurityPolicy
    from tenants.models import Tenant

    migrate_and_create(SLUG)
    use_role("app")
    tenant = Tenant.objects.get(slug=SLUG)
    password = "bench-password-0123456789"  # noqa: S105 (a throwaway user of a throwaway database)
    with tenant_context(tenant):
        _forget_redis_keys(connection.schema_name)
        # An agent whom the tenant's policy spares MFA: the benchmark signs in without a code.
        SecurityPolicy.objects.update_or_create(pk=1, defaults={"mfa_roles": []})
        user = get_user_model()(username="agent@bench.test", email="agent@bench.test", role="agent")
        user.set_password(password)
        user.save()
    connection.set_schema_to_public()

    override_settings(
        ROOT_URLCONF=_bench_urls(),
        PARLEY_RATE_API_PER_USER="100000000/min",
        PARLEY_RATE_API_PER_TENANT="100000000/min",
    ).enable()
    client = Client(HTTP_HOST=HOST)
    signed_in = client.post(
        "/api/v1/auth/token/",
        {"username": "agent@bench.test", "password": password},
        content_type="application/json",
    )
    assert signed_in.status_code == 200, signed_in.content
    access = signed_in.json()["access"]
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {access}"}

    runs = {
        "open": ("/bench/open/", {}),
        "jwt": ("/bench/jwt/", bearer),
        "jwt_default_stack": ("/bench/jwt-default/", bearer),
    }
    for url, headers in runs.values():  # each answers as it should before anything is timed
        assert client.get(url, **headers).status_code == 200
    assert client.get("/bench/jwt/").status_code == 401  # no token: refused, so it was checked
    assert client.get("/bench/jwt/", HTTP_AUTHORIZATION="Bearer x.y.z").status_code == 401

    samples: dict[str, list[int]] = {name: [] for name in runs}
    for i in range(args.warmup + args.requests):
        for name, (url, headers) in runs.items():
            started = time.perf_counter_ns()
            response = client.get(url, **headers)
            elapsed = time.perf_counter_ns() - started
            if response.status_code != 200:
                raise SystemExit(f"{name}: {response.status_code} {response.content[:200]!r}")
            if i >= args.warmup:
                samples[name].append(elapsed)

    figures = {name: _figures(values) for name, values in samples.items()}
    with tenant_context(tenant):
        components = _components(access, user.pk, rounds=args.requests)
        _forget_redis_keys(connection.schema_name)
    connection.set_schema_to_public()

    def diff(a: str, b: str) -> dict:
        return {
            "p50": round(figures[a]["p50_ms"] - figures[b]["p50_ms"], 4),
            "mean": round(figures[a]["mean_ms"] - figures[b]["mean_ms"], 4),
        }

    result = {
        "benchmark": "auth",
        "requests_per_view": args.requests,
        "compared": "GET of three tiny DRF views through the full middleware stack with the Django "
        "test Client, each running one SELECT 1 in the tenant schema: 'open' (no auth/permission/"
        "throttle), 'jwt' (bearer token + revocation check + policy permission), "
        "'jwt_default_stack' (the API defaults: JWT and session authenticators, permission, "
        "per-user and per-tenant rate limits).",
        "postgres": connection.cursor().connection.info.server_version,
        "per_request": figures,
        "overhead_ms": diff("jwt", "open"),
        "rate_limits_ms": diff("jwt_default_stack", "jwt"),
        "components_us": components,
        "targets": {"overhead_ms": 0.5},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
