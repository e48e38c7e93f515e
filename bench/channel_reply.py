"""Benchmark: a WhatsApp message in, its reply out, with one worker (issue 12). Prints JSON.

Its own database (``bench_parley_reply``, recreated; dropped at the end unless
``--keep``) and Redis database (13, flushed). gunicorn as in bench/webhooks.py,
one Celery worker on the default queue, ``-c 1`` unless ``--worker-concurrency N``
gives that one worker N prefork processes (``make run`` starts it with ``-c 2``;
the deployed ``celery worker`` has Celery's default, one per core), and
the local Graph API of the tests (``tests/fakes/graph.py``) in this process,
which notes when each reply arrives. The channel's ``graph_base_url`` points at it.

The reply is the inbox's real auto-reply: the inbox is closed at all hours and
has an auto-reply, which ``conversations.services.message_receive`` queues on
the first message of a new conversation, so each message comes from a new
sender and gets exactly one reply. Path measured: signed webhook → stored
event → worker (parse, contact, conversation, message, auto-reply) →
``reply_queued`` → delivery task → ``POST /v21.0/<phone id>/messages`` received.

* ``steady``: ``--count`` single-message webhooks at ``--rate`` per second (open
  loop); latency from the scheduled send to the Graph API receiving the reply.
* ``sustained``: the target's shape, ``--sustain-rate`` (80) single-message
  webhooks per second for ``--sustain-seconds`` (15), open loop: the reply rate,
  latency, and the median latency of the first and last tenth (a queue that grows
  shows there). Two rates: ``messages_per_s`` is the replies over the time from
  the first send to the last reply, so it holds the path's fill and drain and
  stays under the offered rate even for a path that keeps up (1,200 messages
  in 15 s plus the last reply's latency: 79.7/s at 50 ms);
  ``replies_per_s_while_sending`` counts the replies that arrived from 1 s after
  the first send until the last send, per second: the offered rate when the path
  keeps up, the path's own rate when it does not;
* ``burst``: ``--burst`` messages posted at once in batches of 50, then the
  time until every reply has arrived: the worker's own rate, no idle gaps.

Target: >= 80 messages/s with one worker. The channel's own send rate limit is
kept (WhatsApp: 80/s per number, a bucket of one second), so no phase can exceed
about 80 replies/s on the one channel measured: the burst's figure is at most
(burst + 80) / (burst / 80) s, and the sustained phase shows whether the path
keeps up with the whole allowance.

    python bench/channel_reply.py [--rate 10] [--count 300] [--burst 1000]
                                  [--sustain-rate 80] [--sustain-seconds 15]
                                  [--workers 3] [--threads 4] [--worker-concurrency 1] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _channels import (  # noqa: E402
    ACCESS_TOKEN,
    BASE_DIR,
    SLUG,
    Server,
    Worker,
    drop_database,
    ms,
    quiet_heap,
    redis_for_bench,
    run_load,
    seed,
    signed_request,
    summary,
    whatsapp_payload,
)
from _setup import migrate_and_create, prepare  # noqa: E402

sys.path.insert(0, str(BASE_DIR))
from tests.fakes.graph import FakeGraph  # noqa: E402

BENCH_DB = "bench_parley_reply"
APP_SECRET = "bench-reply-app-secret"  # noqa: S105 - the benchmark's own channel
FILL_SECONDS = 1.0  # an open loop's first second: the path fills (not in the while-sending rate)
# Sender number ranges per phase.
WARMUP, STEADY, SUSTAIN, BURST = 900_000_000, 0, 700_000_000, 500_000_000


class TimedGraph(FakeGraph):
    """The fake Graph API, noting when the reply to each sender number arrived."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.arrived: dict[int, float] = {}
        self.changed = threading.Condition()

    def _respond(self, recorded):
        answer = super()._respond(recorded)
        try:
            to = int(json.loads(recorded.body)["to"])
        except (ValueError, KeyError, TypeError):
            return answer
        with self.changed:
            self.arrived.setdefault(to - 1650_000_000_000, time.monotonic())
            self.changed.notify_all()
        return answer

    def wait_for(self, senders: range, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not all(n in self.arrived for n in senders):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 1.0))
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--sustain-rate", type=float, default=80.0)
    parser.add_argument("--sustain-seconds", type=float, default=15.0)
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=1,
        help="prefork processes of the one Celery worker (deploy default: one per core)",
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    prepare(BENCH_DB)
    redis_for_bench()
    import django

    django.setup()
    migrate_and_create(SLUG)
    graph = TimedGraph(token=ACCESS_TOKEN).start()
    public_id = seed(channels={"reply": APP_SECRET}, graph_base_url=graph.base_url)["reply"]
    hook = f"/webhooks/whatsapp/{public_id}/"
    quiet_heap()  # the fake Graph API answers and times replies in this process

    def messages(offset: int, per_post: int = 1):
        def make(i: int) -> bytes:
            body = whatsapp_payload(
                first=offset + i * per_post,
                count=per_post,
                run=str(offset),
                sender_per_message=True,
            )
            return signed_request(hook, body, APP_SECRET)

        return make

    server = Server(workers=args.workers, threads=args.threads).start()
    worker = Worker(concurrency=args.worker_concurrency).start()
    result = {
        "benchmark": "channel_reply",
        "machine": {
            "cores": len(os.sched_getaffinity(0)),
            "shared_with": "gunicorn, load generator, fake Graph API, PostgreSQL, Redis",
        },
        "config": {
            **server.config,
            "celery_worker": f"1 worker, -c {args.worker_concurrency} (prefork), queue default",
        },
    }
    try:
        print("warm-up (worker start, first replies)…", file=sys.stderr)
        run_load(server.port, messages(WARMUP), "open", rate=10, count=20)
        if not graph.wait_for(range(WARMUP, WARMUP + 20), timeout=90):
            sys.exit("no replies during the warm-up:\n" + worker.log()[-3000:])

        def open_loop(name: str, base: int, rate: float, count: int) -> dict:
            print(f"{name}: {count} messages at {rate}/s…", file=sys.stderr)
            samples, statuses = run_load(
                server.port, messages(base), "open", rate=rate, count=count
            )
            complete = graph.wait_for(range(base, base + count), timeout=300)
            sent_at = {base + i: at for at, _, i in samples}  # by sender number
            replied = sorted(i for i in sent_at if i in graph.arrived)
            latencies = [graph.arrived[i] - sent_at[i] for i in replied]
            first = min(sent_at.values())
            last = max(graph.arrived[i] for i in replied)
            tenth = max(1, len(replied) // 10)
            # While the load is on: replies that arrived from FILL_SECONDS after the
            # first send to the last send, per second of that window. Unlike
            # messages_per_s (first send to last reply, so the pipeline's fill and
            # drain are in it), this equals the offered rate for a path that keeps up.
            filled, last_send = first + FILL_SECONDS, max(sent_at.values())
            window = last_send - filled
            during = sum(1 for i in replied if filled <= graph.arrived[i] <= last_send)
            return {
                "offered_rate_per_s": rate,
                "messages": count,
                "webhook_statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
                "replies_received": len(latencies),
                "complete": complete,
                "messages_per_s": round(len(latencies) / (last - first), 1),
                "replies_per_s_while_sending": round(during / window, 1) if window >= 2 else None,
                **summary(latencies),
                # A queue that grows shows as the last messages waiting longer.
                "first_tenth_p50_ms": summary(latencies[:tenth])["p50_ms"],
                "last_tenth_p50_ms": summary(latencies[-tenth:])["p50_ms"],
                "ack": summary([latency for _, latency, _ in samples]),
            }

        result["steady"] = open_loop("steady", STEADY, args.rate, args.count)
        # The target's own shape: one number's whole allowance (WhatsApp: 80/s),
        # one message per webhook as Meta sends them, for --sustain-seconds.
        result["sustained"] = open_loop(
            "sustained",
            SUSTAIN,
            args.sustain_rate,
            int(args.sustain_rate * args.sustain_seconds),
        )

        print(f"burst: {args.burst} messages in batches of 50…", file=sys.stderr)
        posts = -(-args.burst // 50)
        started = time.monotonic()
        samples, statuses = run_load(server.port, messages(BURST, 50), "open", rate=50, count=posts)
        ingested = time.monotonic()
        senders = range(BURST, BURST + posts * 50)
        complete = graph.wait_for(senders, timeout=600)
        got = [graph.arrived[n] for n in senders if n in graph.arrived]
        result["burst"] = {
            "messages": len(senders),
            "webhook_statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
            "ingest_s": round(ingested - started, 2),
            "replies_received": len(got),
            "complete": complete,
            "all_replied_after_s": round(max(got) - started, 2) if got else None,
            "messages_per_s": round(len(got) / (max(got) - started), 1) if got else None,
            "first_to_last_reply_ms": ms(max(got) - min(got)) if got else None,
        }
    finally:
        worker.stop()
        server.stop()
        graph.stop()
    result["target"] = {
        "messages_per_s_one_worker": {
            "target": 80,
            "measured_sustained": result["sustained"]["messages_per_s"],
            "measured_sustained_while_sending": result["sustained"]["replies_per_s_while_sending"],
            "measured_burst": result["burst"]["messages_per_s"],
            "measured_steady": result["steady"]["messages_per_s"],
        }
    }
    print(json.dumps(result, indent=2))
    if not args.keep:
        drop_database(BENCH_DB)


if __name__ == "__main__":
    main()
