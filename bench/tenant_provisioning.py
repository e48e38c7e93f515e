"""Benchmark: provisioning tenants by clone, and a no-op migrate across all of them.

Prints one JSON object. Runs against its own database (``bench_parley`` on the
configured server, recreated each run), as the owner role, like production
provisioning. Usage::

    python -m parley.devstack up            # or set DATABASE_URL & co.
    python bench/tenant_provisioning.py --tenants 50
    python bench/tenant_provisioning.py --tenants 1000 --skip-full-migrate

Figures:
* ``provision_seconds``: per tenant, ``tenants.services.tenant_create`` (rows,
  schema clone, grants, owner user, commit) on a fresh owner connection, as
  the provisioning worker does it — median, p95, max;
* ``noop_migrate_schemas_seconds``: django-tenants' ``migrate_schemas`` over all
  tenant schemas when nothing is pending (runs Django's migrate in each);
* ``noop_parley_migrate_seconds``: ``manage.py parley_migrate`` (what deploys
  run), which compares each schema's applied migrations with the graph first.
Targets (issue 2): median provision <= 0.3 s; no-op migrate across 1,000
tenants <= 60 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import prepare  # noqa: E402

BENCH_DB = "bench_parley"


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument(
        "--skip-full-migrate", action="store_true", help="skip django-tenants' migrate_schemas run"
    )
    args = parser.parse_args()

    prepare(BENCH_DB)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from tenants.migrating import migrate_all
    from tenants.services import tenant_create

    started = time.perf_counter()
    migrate_all(log=lambda _m: None)
    initial_migrate = time.perf_counter() - started

    seconds: list[float] = []
    total_started = time.perf_counter()
    for i in range(args.tenants):
        # Like the provisioning worker, which closes its connection after each
        # tenant (catalog caches of a backend that created schemas slow it down).
        connection.close()
        t0 = time.perf_counter()
        tenant_create(
            slug=f"bench-{i:05d}",
            name=f"Bench {i}",
            domain=f"bench-{i:05d}.localhost",
            owner_email=f"owner@bench-{i:05d}.test",
        )
        seconds.append(time.perf_counter() - t0)
    provision_total = time.perf_counter() - total_started

    result: dict[str, object] = {
        "benchmark": "tenant_provisioning",
        "tenants": args.tenants,
        "postgres": connection.cursor().connection.info.server_version,
        "initial_migrate_seconds": round(initial_migrate, 3),
        "provision_seconds": {
            "median": round(statistics.median(seconds), 4),
            "p95": round(_percentile(seconds, 95), 4),
            "max": round(max(seconds), 4),
            "first": round(seconds[0], 4),
            "last": round(seconds[-1], 4),
            "total": round(provision_total, 2),
        },
        "targets": {"provision_median_seconds": 0.3, "noop_migrate_1000_tenants_seconds": 60},
    }

    t0 = time.perf_counter()
    outcome = migrate_all(log=lambda _m: None)
    result["noop_parley_migrate_seconds"] = round(time.perf_counter() - t0, 3)
    result["noop_parley_migrate_schemas_migrated"] = outcome["tenants_migrated"]

    if not args.skip_full_migrate:
        t0 = time.perf_counter()
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=0)
        result["noop_migrate_schemas_seconds"] = round(time.perf_counter() - t0, 2)

    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
