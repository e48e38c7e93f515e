"""Benchmark: acknowledging signed WhatsApp webhooks (issue 12). Prints one JSON object.

Its own database (``bench_parley_webhooks``, recreated; dropped at the end unless
``--keep``) and Redis database (13, flushed). gunicorn with
``platform/gunicorn.conf.py`` on loopback (``--workers``/``--threads``; the
config is in the output), the app role, the per-channel rate limit raised so it
is checked but never refuses (at 10,000,000/min it is counted a lease of 50
requests per round trip, as any channel allowed 2,000 a minute or more is:
``accounts.throttles.hit_leased``). No Celery worker runs: the webhook answers once
the raw event is stored (encrypted, idempotent) and its processing enqueued;
whether a worker keeps up is ``bench/channel_reply.py``.

Load comes from a separate process (asyncio, raw HTTP/1.1, keep-alive; the heap
it inherits frozen, so its own garbage collection never holds a send back:
``_channels.quiet_heap``), shaped as Meta sends it
(``tests/fixtures/meta/wa_webhook_text.json``, a fresh message id per event,
``X-Hub-Signature-256`` over the exact body):

* ``floor``: ``POST /bench/ok/``, a bare Django view behind the same middleware
  in the same server (``bench/bench_urls.py``, routed only by
  ``bench/bench_settings.py``), closed loop with ``--concurrency`` connections;
* ``single``: one message per POST, closed loop: events/s and its share of the floor;
* ``single_open``/``floor_open``: open loop at ``--rate`` requests/s (latency from
  the scheduled send time, so queueing in the server counts);
* ``batched``: ``--batch`` messages per POST, closed loop: messages/s.

Targets: ack p99 <= 50 ms at 200 requests/s; >= 1,000 messages/s batched;
single messages >= 50 % of the floor's throughput.

    python bench/webhooks.py [--workers 3] [--threads 4] [--concurrency 16]
                             [--duration 10] [--rate 200] [--open-seconds 15] [--batch 50] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _channels import (  # noqa: E402
    SLUG,
    Server,
    drop_database,
    redis_for_bench,
    run_load,
    seed,
    signed_request,
    summary,
    whatsapp_payload,
)
from _setup import migrate_and_create, prepare  # noqa: E402

BENCH_DB = "bench_parley_webhooks"
APP_SECRET = "bench-app-secret"  # noqa: S105 - the benchmark's own channel


def closed_figures(samples, statuses, duration: float, per_request: int = 1) -> dict:
    latencies = [latency for _, latency in samples]
    ok = statuses.get(200, 0)
    return {
        "requests": len(samples),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "requests_per_s": round(ok / duration, 1),
        **({"messages_per_s": round(ok * per_request / duration, 1)} if per_request > 1 else {}),
        **summary(latencies),
    }


def open_figures(samples, statuses, rate: float) -> dict:
    latencies = [latency for _, latency, _ in samples]
    return {
        "offered_rate_per_s": rate,
        "requests": len(samples),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        **summary(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--open-seconds", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    prepare(BENCH_DB)
    redis_for_bench()
    import django

    django.setup()
    migrate_and_create(SLUG)
    public_id = seed(channels={"ingest": APP_SECRET})["ingest"]
    hook = f"/webhooks/whatsapp/{public_id}/"

    def floor(i: int) -> bytes:
        body = whatsapp_payload(first=i, count=1, run="floor", sender_per_message=True)
        return signed_request("/bench/ok/", body, None)

    def webhook(run: str, count: int):
        def make(i: int) -> bytes:
            body = whatsapp_payload(first=i * count, count=count, run=run, sender_per_message=True)
            return signed_request(hook, body, APP_SECRET)

        return make

    server = Server(workers=args.workers, threads=args.threads).start()
    closed = {"concurrency": args.concurrency, "duration": args.duration, "warmup": args.warmup}
    n_open = int(args.rate * args.open_seconds)
    try:
        result = {
            "benchmark": "webhooks",
            "machine": {
                "cores": len(os.sched_getaffinity(0)),
                "shared_with": "load generator, PostgreSQL, Redis",
            },
            "config": {
                **server.config,
                "closed_loop_connections": args.concurrency,
                "closed_loop_seconds": args.duration,
                "batch": args.batch,
            },
        }
        print("floor (closed loop)…", file=sys.stderr)
        result["floor"] = closed_figures(
            *run_load(server.port, floor, "closed", **closed), args.duration
        )
        print("single (closed loop)…", file=sys.stderr)
        result["single"] = closed_figures(
            *run_load(server.port, webhook("single", 1), "closed", **closed), args.duration
        )
        result["single"]["share_of_floor"] = round(
            result["single"]["requests_per_s"] / max(result["floor"]["requests_per_s"], 1e-9), 3
        )
        print(f"single (open loop, {args.rate}/s)…", file=sys.stderr)
        result["single_open"] = open_figures(
            *run_load(server.port, webhook("open", 1), "open", rate=args.rate, count=n_open),
            args.rate,
        )
        print(f"floor (open loop, {args.rate}/s)…", file=sys.stderr)
        result["floor_open"] = open_figures(
            *run_load(server.port, floor, "open", rate=args.rate, count=n_open), args.rate
        )
        print(f"batched x{args.batch} (closed loop)…", file=sys.stderr)
        result["batched"] = closed_figures(
            *run_load(server.port, webhook("batch", args.batch), "closed", **closed),
            args.duration,
            per_request=args.batch,
        )
    finally:
        server.stop()

    # Every acknowledged event is really stored (warm-up requests included).
    from django_tenants.utils import tenant_context

    from connectors.models import InboundEvent
    from tenants.models import Tenant

    with tenant_context(Tenant.objects.get(slug=SLUG)):
        result["events_stored"] = InboundEvent.objects.count()
    result["targets"] = {
        "ack_p99_at_200_per_s_ms": {"target": 50, "measured": result["single_open"]["p99_ms"]},
        "batched_messages_per_s": {"target": 1000, "measured": result["batched"]["messages_per_s"]},
        "single_share_of_floor": {"target": 0.5, "measured": result["single"]["share_of_floor"]},
    }
    print(json.dumps(result, indent=2))
    if not args.keep:
        drop_database(BENCH_DB)


if __name__ == "__main__":
    main()
