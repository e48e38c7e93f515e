"""Profile: where one WhatsApp message's CPU goes, in process (issue 12). Prints JSON.

Complements bench/webhooks.py and bench/channel_reply.py (wall-clock, real
gunicorn and worker): this one runs each stage of the message path in this
process, so CPU time (``time.process_time``) and SQL statements per stage are
measured exactly, whatever else the machine does. Its own database
(``bench_parley_path``, recreated, dropped unless ``--keep``) and Redis database 13.

Stages, per message (each message from a new sender, so each gets the inbox's
auto-reply, as in bench/channel_reply.py):

* ``webhook``: the signed POST through the whole Django stack (test Client);
* ``process``: the stored event's processing (``connectors.tasks.inbound_events_drain``,
  as the worker runs it, in this process, the tenant schema active);
* ``deliver``: the reply's delivery (``connectors.tasks.message_deliver``) to the
  local Graph API; with ``--drain``, what production runs instead: one
  ``connectors.tasks.message_drain`` per webhook for the replies it queued (the
  processing stage's ``reply_queued`` put them in the inbox's drain queue).
  Without ``--drain`` nothing drains that queue, so the inbox's "drain pending"
  flag stays up and the processing stage publishes no task after the first
  reply: its figure is the realistic one with ``--drain``.

``--batch N`` posts N messages per webhook instead of one. ``--profile STAGE``
adds cProfile's top functions (cumulative) of that stage. ``--webhook-only`` runs
the floor and the webhook alone: nothing processes the events, so the tenant's
drain flag stays up and the webhook publishes no task, as under load in
bench/webhooks.py.

    python bench/message_path.py [--count 200] [--batch 1] [--drain] [--profile process]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _channels import (  # noqa: E402
    ACCESS_TOKEN,
    BASE_DIR,
    HOST,
    SLUG,
    drop_database,
    redis_for_bench,
    seed,
    whatsapp_payload,
)
from _setup import migrate_and_create, prepare, use_role  # noqa: E402

sys.path.insert(0, str(BASE_DIR))

BENCH_DB = "bench_parley_path"
SORT = "cumulative"
QUERIES = [0]  # SQL statements executed so far (counted by an execute wrapper)


SHOW_SQL = [False]
PROFILE_DUMP = [""]  # --profile-dump PREFIX: also write PREFIX.<stage>.prof
SQL: list[str] = []  # with --sql: the statements of the last measured message, by stage


def _count(execute, sql, params, many, context):
    QUERIES[0] += 1
    SQL.append(sql)
    return execute(sql, params, many, context)


APP_SECRET = "bench-path-app-secret"  # noqa: S105 - the benchmark's own channel


class Stage:
    def __init__(self, name: str, profile: bool):
        self.name = name
        self.cpu = self.wall = 0.0
        self.queries = 0
        self.runs = 0
        self.profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall

    def __enter__(self):
        self._q = QUERIES[0]
        SQL.clear()
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        if self.profiler:
            self.profiler.enable()
        return self

    def __exit__(self, *exc):
        if self.profiler:
            self.profiler.disable()
        self.cpu += time.process_time() - self._cpu
        self.wall += time.perf_counter() - self._wall
        self.queries += QUERIES[0] - self._q
        self.runs += 1
        self.last_sql = list(SQL)

    def report(self, messages: int) -> dict:
        out = {
            "cpu_ms_per_message": round(1000 * self.cpu / messages, 2),
            "wall_ms_per_message": round(1000 * self.wall / messages, 2),
            "queries_per_message": round(self.queries / messages, 2),
            "runs": self.runs,
        }
        if SHOW_SQL[0]:
            out["last_sql"] = [sql[:300] for sql in getattr(self, "last_sql", [])]
        if self.profiler:
            if PROFILE_DUMP[0]:
                self.profiler.dump_stats(f"{PROFILE_DUMP[0]}.{self.name}.prof")
            buffer = io.StringIO()
            pstats.Stats(self.profiler, stream=buffer).sort_stats(SORT).print_stats(45)
            out["profile"] = buffer.getvalue().splitlines()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument(
        "--profile", choices=("floor", "webhook", "process", "deliver"), action="append"
    )
    parser.add_argument("--profile-dump", default="", metavar="PREFIX")
    parser.add_argument("--sql", action="store_true", help="print the last message's SQL")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--drain", action="store_true", help="deliver with message_drain")
    parser.add_argument(
        "--webhook-only",
        action="store_true",
        help="floor and webhook only: nothing processes, so the tenant's drain flag stays "
        "up and webhooks publish no task, as in bench/webhooks.py",
    )
    args = parser.parse_args()
    SHOW_SQL[0] = args.sql
    PROFILE_DUMP[0] = args.profile_dump

    prepare(BENCH_DB)
    redis_for_bench()
    import django

    django.setup()
    migrate_and_create(SLUG)
    use_role("app")
    import hashlib
    import hmac

    from django.db import connection
    from django.test import Client
    from django_tenants.utils import tenant_context

    from connectors import delivery
    from connectors.models import InboundEvent
    from connectors.tasks import inbound_events_drain, message_deliver, message_drain
    from conversations.models import Message
    from tenants.models import Tenant
    from tests.fakes.graph import FakeGraph

    # The channel's send rate (WhatsApp: 80/s) is checked on every send but never
    # refuses here: this bench measures CPU per message, faster than any channel may
    # send; the pacing itself is bench/channel_reply.py's (which keeps the real rate).
    delivery.channel_rate = lambda channel: 1_000_000.0
    graph = FakeGraph(token=ACCESS_TOKEN).start()
    public_id = seed(channels={"path": APP_SECRET}, graph_base_url=graph.base_url)["path"]
    hook = f"/webhooks/whatsapp/{public_id}/"
    client = Client(HTTP_HOST=HOST)
    tenant = Tenant.objects.get(slug=SLUG)
    wanted = set(args.profile or ())
    stages = {
        name: Stage(name, name in wanted) for name in ("floor", "webhook", "process", "deliver")
    }
    from django.test import override_settings

    floor_urls = override_settings(ROOT_URLCONF="bench_urls")

    def post(first: int, count: int, run: str):
        body = whatsapp_payload(first=first, count=count, run=run, sender_per_message=True)
        mac = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return client.post(
            hook, body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=f"sha256={mac}"
        )

    def one_round(first: int, count: int, run: str, measure: bool):
        # The floor: the same signed body to bench/bench_urls.py's bare view, through
        # the same middleware (what bench/webhooks.py compares the webhook with).
        body = whatsapp_payload(first=first, count=count, run="floor", sender_per_message=True)
        with floor_urls, stages["floor"] if measure else contextlib.nullcontext():
            response = client.post("/bench/ok/", body, content_type="application/json")
        assert response.status_code == 200, response.status_code
        with stages["webhook"] if measure else contextlib.nullcontext():
            response = post(first, count, run)
        assert response.status_code == 200, response.content
        event_id = response.json()["event_id"]
        if args.webhook_only:
            return 0
        with tenant_context(tenant):
            with stages["process"] if measure else contextlib.nullcontext():
                drained = inbound_events_drain.run()
            assert drained.get("processed") == 1, (drained, event_id)
            replies = list(
                Message.objects.filter(
                    direction=Message.Direction.OUT, delivery=Message.Delivery.QUEUED
                ).values_list("id", "inbox_id_denorm")
            )
            with stages["deliver"] if measure else contextlib.nullcontext():
                if args.drain:
                    for inbox_id in sorted({inbox for _id, inbox in replies}):
                        message_drain.run(inbox_id)
                else:
                    for message_id, _inbox in replies:
                        message_deliver.run(message_id)
        return len(replies)

    with connection.execute_wrapper(_count):
        # Warm-up: the first requests fill caches (secrets, tenant, templates).
        for i in range(5):
            one_round(10**8 + i * args.batch, args.batch, "warm", measure=False)
        messages = replies = 0
        for i in range(args.count // args.batch):
            replies += one_round(i * args.batch, args.batch, "run", measure=True)
            messages += args.batch
    with tenant_context(tenant):
        events = InboundEvent.objects.count()
        sent = Message.objects.filter(
            direction=Message.Direction.OUT, delivery=Message.Delivery.SENT
        ).count()
    graph.stop()
    result = {
        "benchmark": "message_path",
        "messages": messages,
        "per_webhook": args.batch,
        "deliver_with": "message_drain" if args.drain else "message_deliver",
        "replies_queued": replies,
        "replies_sent_with_warmup": sent,
        "events_stored": events,
        "graph_requests": len(graph.requests),
        "stages": {name: stage.report(messages) for name, stage in stages.items()},
    }
    result["total_cpu_ms_per_message"] = round(
        sum(s["cpu_ms_per_message"] for n, s in result["stages"].items() if n != "floor"), 2
    )
    print(json.dumps(result, indent=2))
    connection.close()
    if not args.keep:
        drop_database(BENCH_DB)


if __name__ == "__main__":
    main()
