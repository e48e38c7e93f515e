"""Benchmark: audit events appended per second (1 and 8 writers), and verifying
a chain of 1,000,000 events. Prints one JSON object.

Runs against its own database (``bench_parley_audit``, recreated). Writers are
processes using the app role, like web and workers, calling
``audit.services.record``: standalone (the event is its own transaction, as for
sign-in events) and inside a caller's transaction (as for an action and its
event; the chain lock is then held until that transaction commits). The
million-event chain is generated directly (hashes computed in Python, rows
COPYed in as the owner) because what is measured there is ``verify_chain``.

Targets (issue 3): >= 2,000 events/s per tenant with 8 writers; verify 1,000,000
events in <= 30 s.

    python bench/audit.py [--seconds 5] [--events 1000000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import migrate_and_create, prepare, use_role  # noqa: E402

BENCH_DB = "bench_parley_audit"


def _writer(schema: str, seconds: float, start_at: float, queue, in_transaction: bool) -> None:
    import django

    django.setup()
    from django.db import connection

    from audit.services import record
    from tenants.models import Tenant

    connection.set_tenant(Tenant.objects.get(schema_name=schema))
    while time.time() < start_at:
        time.sleep(0.001)
    count, deadline = 0, time.time() + seconds
    from django.db import transaction

    while time.time() < deadline:
        if in_transaction:
            # As an action does it: its own statement plus the event, one commit.
            with transaction.atomic():
                connection.cursor().execute("SELECT 1")
                record("user.updated", details={"fields": ["first_name"], "n": count})
        else:
            record("user.updated", details={"fields": ["first_name"], "n": count})
        count += 1
    queue.put(count)


def _append_rate(
    schema: str, writers: int, seconds: float, *, in_transaction: bool = False
) -> dict:
    from django.db import connections

    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 1.0
    procs = [
        ctx.Process(target=_writer, args=(schema, seconds, start_at, queue, in_transaction))
        for _ in range(writers)
    ]
    for p in procs:
        p.start()
    counts = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    total = sum(counts)
    return {
        "writers": writers,
        "in_caller_transaction": in_transaction,
        "events": total,
        "seconds": seconds,
        "per_second": round(total / seconds),
    }


def _generate_chain(schema: str, events: int) -> float:
    """Write ``events`` chained events with COPY (owner role); returns seconds."""
    from datetime import UTC, datetime, timedelta

    from django.db import connection

    from audit.hashing import content_hash, format_timestamp, link_hash
    from audit.models import GENESIS_HASH

    started = time.perf_counter()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    columns = (
        "seq, occurred_at, actor_kind, actor_id, actor_name, action, target_type, target_id, outcome, ip, "
        "user_agent, request_id, details, content_hash, prev_hash, hash"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SET search_path TO {schema}")
        cursor.execute(
            "SELECT seq, hash FROM audit_auditevent WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"
        )
        head = cursor.fetchone() or (0, GENESIS_HASH)
        prev = head[1]
        with cursor.connection.cursor().copy(
            f"COPY audit_auditevent ({columns}) FROM STDIN"
        ) as copy:
            for seq in range(head[0] + 1, head[0] + events + 1):
                fields = {
                    "seq": seq,
                    "occurred_at": base + timedelta(milliseconds=seq),
                    "actor_kind": "user",
                    "actor_id": str(seq % 50),
                    "actor_name": f"user{seq % 50}@bench.test",
                    "action": "user.updated",
                    "target_type": "user",
                    "target_id": str(seq % 1000),
                    "outcome": "allowed",
                    "ip": "10.0.0.1",
                    "user_agent": "bench",
                    "request_id": f"req{seq:012d}",
                    "details": {"fields": ["first_name"], "n": seq},
                    "prev_hash": prev,
                }
                content = content_hash(fields)
                digest = link_hash(seq, fields["occurred_at"], prev, content)
                copy.write_row(
                    (
                        seq,
                        format_timestamp(fields["occurred_at"]),
                        "user",
                        fields["actor_id"],
                        fields["actor_name"],
                        "user.updated",
                        "user",
                        fields["target_id"],
                        "allowed",
                        "10.0.0.1",
                        "bench",
                        fields["request_id"],
                        json.dumps(fields["details"]),
                        content,
                        prev,
                        digest,
                    )
                )
                prev = digest
    connection.close()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    prepare(BENCH_DB)
    import django

    django.setup()
    from django.db import connection

    from audit.verify import verify_chain

    migrate_and_create("writes", "verify")
    connection.close()

    use_role("app")
    result: dict[str, object] = {
        "benchmark": "audit",
        "postgres": connection.cursor().connection.info.server_version,
        "append_1_writer": _append_rate("t_writes", 1, args.seconds),
        "append_8_writers": _append_rate("t_writes", 8, args.seconds),
        "append_1_writer_in_transaction": _append_rate(
            "t_writes", 1, args.seconds, in_transaction=True
        ),
        "append_8_writers_in_transaction": _append_rate(
            "t_writes", 8, args.seconds, in_transaction=True
        ),
    }
    connection.close()
    report = verify_chain("t_writes")
    result["written_chain_intact"] = report.ok
    result["written_chain_events"] = report.count

    use_role("owner")
    result["generate_seconds"] = round(_generate_chain("t_verify", args.events), 1)
    use_role("app")
    started = time.perf_counter()
    report = verify_chain("t_verify")
    result["verify"] = {
        "events": report.count,
        "seconds": round(time.perf_counter() - started, 2),
        "intact": report.ok,
    }
    result["targets"] = {"append_per_second_8_writers": 2000, "verify_1m_seconds": 30}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
