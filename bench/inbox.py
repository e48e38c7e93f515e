"""Benchmark: the agent inbox of a tenant with 100,000 conversations and 1,000,000
messages. Prints one JSON object (progress and query plans go to stderr).

Runs in its own database (``bench_parley_inbox``, recreated; dropped at the end
unless ``--keep``). One tenant with an admin, 20 agents and 5 inboxes, each
bound to an API channel (``connectors.channels.channel_create``); the measured
agent works 3 of the 5 inboxes (about 80% of the conversations), the other
agents 2 or 3 each.

Data (owner role, COPY, one transaction per chunk of 2,000 conversations):
one contact per conversation (name encrypted; phone and e-mail, encrypted with
blind indexes, for some) with an identity on its inbox's channel;
conversations whose last activity spreads over a year (denser lately), status
by age (recent ones mostly open; overall about 14% open, 5% pending or
snoozed), assignees among the inbox's members, labels, priorities;
``--messages-per-conversation`` messages on average (most threads short, 1% of
them 41-120 messages), exactly ``conversations * that`` in all, every body
really encrypted under the tenant's key and bound to its row id (ids allocated
first, one ``nextval`` series per chunk). A run stopped halfway is continued
with ``--resume``: chunks are deterministic and committed whole, so it counts
what is there and writes the rest. Then ``VACUUM (ANALYZE)``, as autovacuum
would have done on a live table.

Requests (app role, as web processes): the whole Django stack in process
through the test Client (middleware, tenant by host, a session signed in with
a verified second factor, rate limits raised so nothing is refused but still
checked), timed around ``client.get``; samples alternate between the endpoints
after a warm-up so drift hits all of them alike:

* ``list_api_first``: ``GET /api/v1/conversations/?scope=all&status=open``;
* ``list_api_deep``: the same with a ``next_cursor`` half-way down the open
  conversations the agent sees;
* ``list_partial``: ``GET /inbox/?part=list`` (htmx);
* ``list_api_first_admin``: the first page as an admin (every inbox);
* ``thread_api``: ``GET /api/v1/conversations/<id>/messages/``;
* ``thread_page``: ``GET /inbox/c/<id>/`` (which also marks it read);
* ``thread_api_long``: the API for threads of 50 messages or more.

Thread samples take random conversations the agent may see (different ones
for each sample and endpoint). Target (issue 6): p95 of 50 ms or less. When an
endpoint misses it, the ``EXPLAIN (ANALYZE, BUFFERS)`` of its slowest query
goes to stderr.

    python bench/inbox.py [--conversations 100000] [--messages-per-conversation 10]
                          [--samples 300] [--keep] [--resume] [--small] [--explain]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.http import HttpResponse
    from django.test import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import migrate_and_create, prepare, use_role  # noqa: E402

BENCH_DB = "bench_parley_inbox"
SLUG = "inboxbench"
HOST = f"{SLUG}.localhost"
CHUNK = 2_000
TARGET_P95_MS = 50.0
SEED = 6

INBOXES = [("Support", 40), ("Sales", 25), ("Billing", 15), ("WhatsApp EU", 15), ("VIP", 5)]
AGENTS = 20
# Agent 0 is the one measured; the others work two or three inboxes each.
MEASURED_AGENT_INBOXES = (0, 1, 2)
LABELS = [
    "billing", "refund", "vip", "bug", "feature-request", "shipping",
    "urgent", "churn-risk", "onboarding", "spam", "feedback", "order",
]  # fmt: skip
FIRST = [
    "Ada", "Grace", "Alan", "Linus", "Margaret", "Edsger", "Barbara", "Ken", "Dennis", "Frances",
    "Radia", "Tim", "Sophie", "Mary", "John", "Hedy", "Katherine", "Donald", "Leslie", "Niklaus",
]  # fmt: skip
LAST = [
    "Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Dijkstra", "Liskov", "Thompson",
    "Ritchie", "Allen", "Perlman", "Berners-Lee", "Wilson", "Shaw", "Backus", "Lamarr",
    "Johnson", "Knuth", "Lamport", "Wirth",
]  # fmt: skip
SENTENCES = [
    "Hi, my order hasn't arrived yet.",
    "Could you check the tracking number for me?",
    "I was charged twice for the same invoice.",
    "Thanks, that fixed it!",
    "The app crashes when I open the settings page.",
    "Can I change the delivery address?",
    "We'd like to upgrade to the annual plan.",
    "I've attached a screenshot of the error.",
    "Let me check that with our warehouse team and come back to you.",
    "Your refund has been issued; it takes 3 to 5 business days.",
    "Is there a discount for non-profits?",
    "The password reset e-mail never arrives.",
    "Sorry for the trouble, we're looking into it.",
    "Could you send me the order number, please?",
    "It's order 48213, placed last Tuesday.",
    "Our whole team is locked out since this morning.",
    "Please cancel my subscription at the end of the month.",
    "I have a question about the API rate limits.",
    "The package arrived damaged, the box was open.",
    "Great, thank you for the quick answer.",
    "When will the new version be available in my country?",
    "I can confirm the issue is gone after the update.",
    "Can you resend the invoice with our VAT number on it?",
    "We're seeing delays of about ten minutes on every message.",
]
DELIVERY = [("read", 60), ("delivered", 25), ("sent", 10), ("failed", 5)]

MESSAGE_COLUMNS = (
    "id", "conversation_id", "inbox_id_denorm", "kind", "direction", "sender", "sender_user_id",
    "body_ct", "attachments", "external_id", "delivery", "delivery_error", "delivery_attempts",
    "created_at",
)  # fmt: skip
CONVERSATION_COLUMNS = (
    "id", "inbox_id", "contact_id", "status", "snoozed_until", "assignee_id", "labels",
    "priority", "handler", "unread", "last_activity_at", "created_at",
)  # fmt: skip
CONTACT_COLUMNS = (
    "id", "name_ct", "phone_ct", "email_ct", "phone_bi", "email_bi", "attributes", "created_at",
)  # fmt: skip
IDENTITY_COLUMNS = ("contact_id", "channel_id", "external_id")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- the tenant: people, inboxes, channels -------------------------------------------------------


@dataclass
class World:
    schema: str
    admin_id: int
    agent_ids: list[int]  # agent_ids[0] is the measured agent
    inbox_ids: list[int]
    channel_ids: list[int]
    members: dict[int, list[int]]  # inbox id -> ids of the agents who work it


def _agent_inboxes(agent: int) -> tuple[int, ...]:
    if agent == 0:
        return MEASURED_AGENT_INBOXES
    first = agent % len(INBOXES)
    return tuple((first + k) % len(INBOXES) for k in range(2 + agent % 2))


def _world(tenant) -> World:
    """The admin, agents and inboxes, through the services (created once, then read)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django_tenants.utils import tenant_context

    from accounts.models import TOTPDevice
    from connectors.channels import channel_create
    from conversations.access import inbox_member_add
    from conversations.models import Inbox

    User = get_user_model()
    with tenant_context(tenant):
        admin = User.objects.filter(email="admin@inbox.bench").first()
        if admin is None:
            admin = User(username="admin@inbox.bench", email="admin@inbox.bench", role="admin")
            admin.set_unusable_password()
            admin.save()
            TOTPDevice.objects.create(user=admin, name="bench", confirmed=True)
            agents = []
            for i in range(AGENTS):
                email = f"agent{i:02d}@inbox.bench"
                agent = User(username=email, email=email, role="agent")
                agent.set_unusable_password()
                agent.save()
                agents.append(agent)
            TOTPDevice.objects.create(user=agents[0], name="bench", confirmed=True)
            inboxes = []
            for name, _weight in INBOXES:
                channel, _secret = channel_create(
                    by=admin, name=name, outbound_url="http://127.0.0.1:9/parley-bench"
                )
                inboxes.append(Inbox.objects.get(channel=channel))
            for i, agent in enumerate(agents):
                for k in _agent_inboxes(i):
                    inbox_member_add(by=admin, inbox=inboxes[k], user=agent)
        agents = list(User.objects.filter(role="agent").order_by("email"))
        inboxes = [Inbox.objects.get(name=name) for name, _weight in INBOXES]
        world = World(
            schema=connection.schema_name,
            admin_id=admin.pk,
            agent_ids=[a.pk for a in agents],
            inbox_ids=[i.pk for i in inboxes],
            channel_ids=[i.channel_id for i in inboxes],
            members={
                inboxes[k].pk: [a.pk for i, a in enumerate(agents) if k in _agent_inboxes(i)]
                for k in range(len(INBOXES))
            },
        )
    connection.set_schema_to_public()
    return world


# --- data ----------------------------------------------------------------------------------------


def _message_counts(conversations: int, per_conversation: int) -> list[int]:
    """Messages per conversation: most threads short, a few long; exactly the total."""
    rng = random.Random(f"{SEED}:counts")
    m = per_conversation
    short_top, medium_top = max(1, int(1.4 * m)), max(2, 4 * m)
    counts = []
    for _ in range(conversations):
        draw = rng.random()
        if draw < 0.90:
            counts.append(rng.randint(1, short_top))
        elif draw < 0.99:
            counts.append(rng.randint(short_top + 1, medium_top))
        else:
            counts.append(rng.randint(medium_top + 1, 12 * m))
    difference = conversations * m - sum(counts)
    while difference:
        i = rng.randrange(conversations)
        if difference > 0:
            counts[i] += 1
            difference -= 1
        elif counts[i] > 1:
            counts[i] -= 1
            difference += 1
    return counts


def _bodies(rng: random.Random, n: int) -> list[str]:
    """A pool of message texts: mostly a sentence or two, some paragraphs."""
    out = []
    for _ in range(n):
        draw = rng.random()
        sentences = 1 if draw < 0.5 else rng.randint(2, 4) if draw < 0.95 else rng.randint(5, 15)
        out.append(" ".join(rng.choice(SENTENCES) for _ in range(sentences)))
    return out


@dataclass
class Phases:
    ids: float = 0.0
    contacts: float = 0.0
    conversations: float = 0.0
    messages: float = 0.0
    encrypt: float = 0.0
    copy_and_commit: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        return {
            "allocate_ids": round(self.ids, 1),
            "build_contacts": round(self.contacts, 1),
            "build_conversations": round(self.conversations, 1),
            "build_messages": round(self.messages, 1),
            "encrypt_message_bodies": round(self.encrypt, 1),
            "copy_and_commit": round(self.copy_and_commit, 1),
            **{k: round(v, 1) for k, v in self.extra.items()},
        }


def _allocate(cursor, table: str, n: int) -> list[int]:
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, n]
    )
    return [row[0] for row in cursor.fetchall()]


def _copy(cursor, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _status_for(rng: random.Random, age_days: float) -> str:
    if age_days < 2:
        weights = (55, 20, 5, 20)
    elif age_days < 14:
        weights = (30, 10, 3, 57)
    else:
        weights = (12, 3, 1, 84)
    return rng.choices(("open", "pending", "snoozed", "resolved"), weights)[0]


def _chunk(world: World, chunk: int, counts: list[int], now: datetime, phases: Phases) -> int:
    """Write one chunk of conversations with their contacts and messages; returns messages."""
    from django.db import connection, transaction

    from parley.keyring import fields

    rng = random.Random(f"{SEED}:chunk:{chunk}")
    schema = world.schema
    n = len(counts)
    total = sum(counts)
    bodies = _bodies(rng, 500)
    inbox_weights = [w for _name, w in INBOXES]

    with connection.cursor() as cursor:
        # Outside a transaction: the sequences are not transactional anyway, and
        # the tenant's key is cached as soon as it is read (not at commit).
        t0 = time.perf_counter()
        contact_ids = _allocate(cursor, "conversations_contact", n)
        conversation_ids = _allocate(cursor, "conversations_conversation", n)
        message_ids = _allocate(cursor, "conversations_message", total)
        phases.ids += time.perf_counter() - t0

        t0 = time.perf_counter()
        contacts, identities, plan = [], [], []
        for j, cid in enumerate(contact_ids):
            k = rng.choices(range(len(INBOXES)), inbox_weights)[0]
            age_days = 365 * rng.random() ** 1.3
            last = now - timedelta(days=age_days)
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            phone = f"+4915{cid:09d}" if rng.random() < 0.6 else ""
            email = f"customer{cid}@example.com" if rng.random() < 0.3 else ""
            row_fields = {"table": "conversations_contact", "schema": schema, "pk": cid}
            contacts.append(
                (
                    cid,
                    fields.encrypt(name, column="name", **row_fields),
                    fields.encrypt(phone, column="phone", **row_fields) if phone else None,
                    fields.encrypt(email, column="email", **row_fields) if email else None,
                    fields.blind_index(phone, schema=schema, field="contact.phone")
                    if phone
                    else "",
                    fields.blind_index(email, schema=schema, field="contact.email")
                    if email
                    else "",
                    "{}",
                    last - timedelta(days=rng.random() * 30),
                )
            )
            identities.append((cid, world.channel_ids[k], phone[1:] or f"api-user-{cid}"))
            plan.append((k, last, conversation_ids[j], cid))
        phases.contacts += time.perf_counter() - t0

        t0 = time.perf_counter()
        conversations, messages, texts = [], [], []
        next_message = 0
        for (k, last, conv_id, cid), count in zip(plan, counts, strict=True):
            inbox_id = world.inbox_ids[k]
            age_days = (now - last).total_seconds() / 86400
            status = _status_for(rng, age_days)
            assigned_share = {"open": 0.65, "pending": 0.8, "snoozed": 0.9, "resolved": 0.95}
            assignee = (
                rng.choice(world.members[inbox_id])
                if rng.random() < assigned_share[status]
                else None
            )
            handler = "bot" if assignee is None and rng.random() < 0.3 else "human"
            labels = sorted(rng.sample(LABELS, rng.randint(1, 3))) if rng.random() < 0.55 else []
            priority = 0 if rng.random() < 0.8 else rng.randint(1, 4)
            # Message times, newest first from the last activity, then oldest first.
            at, times = last, []
            for _ in range(count):
                times.append(at)
                gap = rng.expovariate(1 / 600) if rng.random() < 0.9 else rng.uniform(3600, 86400)
                at -= timedelta(seconds=gap)
            times.reverse()
            direction = "in"
            for m, created in enumerate(times):
                mid = message_ids[next_message]
                next_message += 1
                if m and rng.random() < 0.5:
                    direction = "out" if direction == "in" else "in"
                kind, sender, sender_user = "message", "", None
                delivery, error, attempts = "", "", 0
                if m and rng.random() < 0.04:
                    kind, sender = "note", "agent"
                    sender_user = assignee or rng.choice(world.members[inbox_id])
                    row_direction = "out"
                elif direction == "in":
                    sender, row_direction = "contact", "in"
                else:
                    row_direction = "out"
                    if handler == "bot" and rng.random() < 0.7:
                        sender = "bot"
                    else:
                        sender = "agent"
                        sender_user = assignee or rng.choice(world.members[inbox_id])
                    delivery = rng.choices(*zip(*DELIVERY, strict=True))[0]
                    attempts = 1
                    if delivery == "failed":
                        error, attempts = "HTTP 503 from the channel", 3
                if kind == "note" or delivery == "failed":
                    external_id = ""
                else:
                    external_id = f"{row_direction}-{mid}"
                attachments = (
                    '[{"url": "https://files.example.com/'
                    f'{mid}/photo.jpg", "type": "image/jpeg", "size": {rng.randint(20_000, 2_000_000)}'
                    "}]"
                    if rng.random() < 0.03
                    else "[]"
                )
                texts.append((mid, rng.choice(bodies)))
                messages.append(
                    [
                        mid,
                        conv_id,
                        inbox_id,
                        kind,
                        row_direction,
                        sender,
                        sender_user,
                        None,  # body_ct, below
                        attachments,
                        external_id,
                        delivery,
                        error,
                        attempts,
                        created,
                    ]
                )
            last_in = messages[-1][4] == "in" and messages[-1][3] == "message"
            unread = rng.randint(1, 4) if status in ("open", "pending") and last_in else 0
            conversations.append(
                (
                    conv_id,
                    inbox_id,
                    cid,
                    status,
                    now + timedelta(hours=rng.uniform(1, 72)) if status == "snoozed" else None,
                    assignee,
                    labels,
                    priority,
                    handler,
                    unread,
                    last,
                    times[0],
                )
            )
        phases.messages += time.perf_counter() - t0

        t0 = time.perf_counter()
        for row, (mid, text) in zip(messages, texts, strict=True):
            row[7] = fields.encrypt(
                text, schema=schema, table="conversations_message", column="body", pk=mid
            )
        phases.encrypt += time.perf_counter() - t0

        t0 = time.perf_counter()
        with transaction.atomic():
            _copy(cursor, "conversations_contact", CONTACT_COLUMNS, contacts)
            _copy(cursor, "conversations_contactidentity", IDENTITY_COLUMNS, identities)
            _copy(cursor, "conversations_conversation", CONVERSATION_COLUMNS, conversations)
            _copy(cursor, "conversations_message", MESSAGE_COLUMNS, messages)
        phases.copy_and_commit += time.perf_counter() - t0
    return total


def _generate(tenant, world: World, conversations: int, per_conversation: int) -> dict:
    """Write what is missing (whole chunks), then VACUUM (ANALYZE). Returns the seconds."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    from conversations.models import Conversation

    phases = Phases()
    started = time.perf_counter()
    counts = _message_counts(conversations, per_conversation)
    now = datetime.now(UTC)
    with tenant_context(tenant):
        done = Conversation.objects.count()
        if done % CHUNK and done != conversations:
            raise SystemExit(f"{done} conversations present: not a whole number of chunks.")
        chunks = range(done // CHUNK, (conversations + CHUNK - 1) // CHUNK)
        if done:
            _log(f"resuming: {done} conversations present")
        written = sum(counts[:done])
        for chunk in chunks:
            begin, end = chunk * CHUNK, min(conversations, (chunk + 1) * CHUNK)
            written += _chunk(world, chunk, counts[begin:end], now, phases)
            elapsed = time.perf_counter() - started
            _log(
                f"chunk {chunk + 1}/{chunks.stop}: {end:,} conversations, {written:,} messages, "
                f"{elapsed:.0f} s"
            )
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "VACUUM (ANALYZE) conversations_contact, conversations_contactidentity, "
                "conversations_conversation, conversations_message"
            )
        phases.extra["vacuum_analyze"] = time.perf_counter() - t0
    connection.set_schema_to_public()
    return {
        "total": round(time.perf_counter() - started, 1),
        "resumed_from_conversations": done,
        **phases.as_dict(),
    }


def _data_facts(tenant, world: World) -> dict:
    from django.db import connection
    from django.db.models import Count
    from django_tenants.utils import tenant_context

    from conversations.models import Contact, Conversation, Message

    visible = [world.inbox_ids[k] for k in MEASURED_AGENT_INBOXES]
    with tenant_context(tenant), connection.cursor() as cursor:
        statuses = Counter(dict(Conversation.objects.values_list("status").annotate(n=Count("id"))))
        facts = {
            "contacts": Contact.objects.count(),
            "conversations": Conversation.objects.count(),
            "messages": Message.objects.count(),
            "inboxes": len(world.inbox_ids),
            "agents": len(world.agent_ids),
            "status": dict(sorted(statuses.items())),
            "visible_to_agent": Conversation.objects.filter(inbox_id__in=visible).count(),
            "open_visible_to_agent": Conversation.objects.filter(
                inbox_id__in=visible, status="open"
            ).count(),
        }
        sizes = {}
        for table in ("conversations_conversation", "conversations_message"):
            cursor.execute(
                "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass)", [table, table]
            )
            table_bytes, index_bytes = cursor.fetchone()
            sizes[table] = {"table_mb": table_bytes // 2**20, "indexes_mb": index_bytes // 2**20}
        facts["sizes"] = sizes
    connection.set_schema_to_public()
    return facts


# --- requests ------------------------------------------------------------------------------------


def _signed_in(tenant, user_id: int):
    """A client with a session past the second factor (as after entering a code)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django_tenants.utils import tenant_context

    from accounts.mfa import SESSION_OTP_AT
    from accounts.models import TOTPDevice

    client = Client(HTTP_HOST=HOST)
    with tenant_context(tenant):
        user = get_user_model().objects.get(pk=user_id)
        client.force_login(user)
        device = TOTPDevice.objects.get(user=user, confirmed=True)
        session = client.session
        session["otp_device_id"] = device.persistent_id
        session[SESSION_OTP_AT] = int(time.time())
        session.save()
    connection.set_schema_to_public()
    return client


class _DbTime:
    """Time spent in the database during one request (execute wrapper)."""

    def __init__(self) -> None:
        self.ns = 0
        self.queries = 0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter_ns()
        try:
            return execute(sql, params, many, context)
        finally:
            self.ns += time.perf_counter_ns() - started
            self.queries += 1


@dataclass
class Endpoint:
    client: Client
    url: str | Callable[[int], str]  # or the URL of sample number i
    headers: dict[str, str]
    rows: Callable[[HttpResponse], int]  # how many rows a response carries
    ms: list[float] = field(default_factory=list)
    db_ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    row_counts: list[int] = field(default_factory=list)

    def get(self, i: int):
        from django.db import connection

        url = self.url(i) if callable(self.url) else self.url
        timer = _DbTime()
        with connection.execute_wrapper(timer):
            started = time.perf_counter_ns()
            response = self.client.get(url, **self.headers)
            elapsed = time.perf_counter_ns() - started
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {response.content[:300]!r}")
        return response, elapsed / 1e6, timer

    def sample(self, i: int) -> None:
        response, ms, timer = self.get(i)
        self.ms.append(ms)
        self.db_ms.append(timer.ns / 1e6)
        self.queries.append(timer.queries)
        self.row_counts.append(self.rows(response))

    def figures(self) -> dict:
        return {
            "p50_ms": round(statistics.median(self.ms), 2),
            "p95_ms": round(_percentile(self.ms, 95), 2),
            "mean_ms": round(statistics.fmean(self.ms), 2),
            "max_ms": round(max(self.ms), 2),
            "db_p50_ms": round(statistics.median(self.db_ms), 2),
            "db_p95_ms": round(_percentile(self.db_ms, 95), 2),
            "queries": statistics.median_low(self.queries),
            "rows_mean": round(statistics.fmean(self.row_counts), 1),
            "samples": len(self.ms),
        }


def _deep_cursor(client, open_visible: int) -> tuple[str, int]:
    """Follow next_cursor (pages of 100) to half-way down the agent's open conversations."""
    cursor, seen = "", 0
    while seen < open_visible // 2:
        url = "/api/v1/conversations/?scope=all&status=open&page_size=100"
        response = client.get(url + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.content[:300]
        page = response.json()
        seen += len(page["results"])
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    return cursor, seen


def _explain(tenant, label: str, figures: dict, run) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) the slowest query ``run`` makes, to stderr."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_tenants.utils import tenant_context

    with tenant_context(tenant):
        with CaptureQueriesContext(connection) as captured:
            run()
        selects = [q for q in captured.captured_queries if q["sql"].lstrip().startswith("SELECT")]
        slowest = max(selects, key=lambda q: float(q["time"]))
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + slowest["sql"])
            plan = [row[0] for row in cursor.fetchall()]
    connection.set_schema_to_public()
    _log(
        f"\n--- {label}: p95 {figures['p95_ms']} ms, of which in the database "
        f"{figures['db_p95_ms']} ms ({figures['queries']} queries a request). "
        f"Slowest query of the selector ({slowest['time']} s):"
    )
    _log(slowest["sql"])
    _log("\n".join(plan))


def _measure(tenant, world: World, facts: dict, samples: int, warmup: int, explain: bool) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Count
    from django.test import override_settings
    from django_tenants.utils import tenant_context

    from conversations import selectors
    from conversations.models import Conversation, Message

    override_settings(
        PARLEY_RATE_API_PER_USER="100000000/min", PARLEY_RATE_API_PER_TENANT="100000000/min"
    ).enable()
    agent = _signed_in(tenant, world.agent_ids[0])
    admin = _signed_in(tenant, world.admin_id)

    rng = random.Random(f"{SEED}:samples")
    visible_inboxes = [world.inbox_ids[k] for k in MEASURED_AGENT_INBOXES]
    with tenant_context(tenant):
        visible = list(
            Conversation.objects.filter(inbox_id__in=visible_inboxes).values_list("pk", flat=True)
        )
        long_ids = list(
            Message.objects.filter(inbox_id_denorm__in=visible_inboxes)
            .values("conversation_id")
            .annotate(n=Count("id"))
            .filter(n__gte=50)
            .values_list("conversation_id", flat=True)
        )
    connection.set_schema_to_public()
    per_run = warmup + samples
    picked = rng.sample(visible, min(len(visible), 2 * per_run))
    api_ids, page_ids = picked[:per_run], picked[per_run:]
    long_ids = [rng.choice(long_ids) for _ in range(per_run)] if long_ids else []

    deep, depth = _deep_cursor(agent, facts["open_visible_to_agent"])
    list_url = "/api/v1/conversations/?scope=all&status=open"

    def api_rows(response) -> int:
        body = response.json()
        return len(body["results"]) if isinstance(body, dict) else len(body)

    def html_rows(marker: bytes):
        return lambda response: response.content.count(marker)

    endpoints = {
        "list_api_first": Endpoint(agent, list_url, {}, api_rows),
        "list_api_deep": Endpoint(agent, f"{list_url}&cursor={deep}", {}, api_rows),
        "list_partial": Endpoint(
            agent, "/inbox/?part=list", {"HTTP_HX_REQUEST": "true"}, html_rows(b'class="conv-item')
        ),
        "list_api_first_admin": Endpoint(admin, list_url, {}, api_rows),
        "thread_api": Endpoint(
            agent, lambda i: f"/api/v1/conversations/{api_ids[i]}/messages/", {}, api_rows
        ),
        "thread_page": Endpoint(
            agent, lambda i: f"/inbox/c/{page_ids[i]}/", {}, html_rows(b'class="msg-row')
        ),
    }
    if long_ids:
        endpoints["thread_api_long"] = Endpoint(
            agent, lambda i: f"/api/v1/conversations/{long_ids[i]}/messages/", {}, api_rows
        )
    _log(f"measuring {len(endpoints)} endpoints, {warmup} warm-up + {samples} samples each")
    load_before = os.getloadavg()[0]
    for i in range(per_run):
        for endpoint in endpoints.values():
            if i < warmup:
                endpoint.get(i)
            else:
                endpoint.sample(i)
    figures = {name: e.figures() for name, e in endpoints.items()}
    # Other work on the machine shows up here (2 cores: this process and PostgreSQL
    # already keep one busy).
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    figures["list_api_deep"]["rows_before_cursor"] = depth

    missed = [name for name, f in figures.items() if f["p95_ms"] > TARGET_P95_MS]
    if missed or explain:
        User = get_user_model()
        with tenant_context(tenant):
            agent_user = User.objects.get(pk=world.agent_ids[0])
            admin_user = User.objects.get(pk=world.admin_id)
        connection.set_schema_to_public()
        flt = selectors.ConversationFilter(scope="all", status="open")
        plans = {
            "list_api_first": lambda: selectors.conversation_page(agent_user, flt),
            "list_partial": lambda: selectors.conversation_page(agent_user, flt),
            "list_api_deep": lambda: selectors.conversation_page(agent_user, flt, cursor=deep),
            "list_api_first_admin": lambda: selectors.conversation_page(admin_user, flt),
            "thread_api": lambda: selectors.thread_messages(
                Conversation.objects.get(pk=api_ids[-1])
            ),
            "thread_api_long": lambda: selectors.thread_messages(
                Conversation.objects.get(pk=long_ids[-1])
            ),
            "thread_page": lambda: selectors.thread_messages(
                Conversation.objects.get(pk=page_ids[-1])
            ),
        }
        for name in figures if explain else missed:
            _explain(tenant, name, figures[name], plans[name])
    return {"per_endpoint": figures, "missed_target": missed, "load_average_1min": load}


# --- the run -------------------------------------------------------------------------------------


def _keeping_existing(bootstrap):
    """``bootstrap_database`` that keeps the database (for ``--resume``)."""

    def keep(**kwargs):
        return bootstrap(**{**kwargs, "recreate": False})

    return keep


def _drop_database() -> None:
    import psycopg
    from django.db import connections

    from parley.dbroles import dsn_from_url

    connections.close_all()
    with psycopg.connect(dsn_from_url(os.environ["DATABASE_SUPERUSER_URL"]), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=None, help="default 100,000")
    parser.add_argument("--messages-per-conversation", type=int, default=10)
    parser.add_argument("--samples", type=int, default=None, help="per endpoint; default 300")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--resume", action="store_true", help="reuse the database and write what is missing"
    )
    parser.add_argument(
        "--small", action="store_true", help="2,000 conversations, 100 samples: to iterate"
    )
    parser.add_argument(
        "--explain", action="store_true", help="query plans of every endpoint to stderr"
    )
    args = parser.parse_args()
    conversations = args.conversations or (2_000 if args.small else 100_000)
    samples = args.samples or (100 if args.small else 300)

    import parley.dbroles

    with (
        mock.patch.object(
            parley.dbroles,
            "bootstrap_database",
            _keeping_existing(parley.dbroles.bootstrap_database),
        )
        if args.resume
        else contextlib.nullcontext()
    ):
        prepare(BENCH_DB)
    import django

    django.setup()
    from django.db import connection

    from tenants.models import Tenant

    started = time.perf_counter()
    if not (args.resume and Tenant.objects.filter(slug=SLUG).exists()):
        migrate_and_create(SLUG)
    use_role("owner")
    tenant = Tenant.objects.get(slug=SLUG)
    world = _world(tenant)
    setup_seconds = time.perf_counter() - started
    generated = _generate(tenant, world, conversations, args.messages_per_conversation)
    generated["setup_migrate_tenant_people_inboxes"] = round(setup_seconds, 1)
    generated["total"] = round(generated["total"] + setup_seconds, 1)

    use_role("app")
    facts = _data_facts(tenant, world)
    _log(f"data: {json.dumps(facts)}")
    measured = _measure(tenant, world, facts, samples, args.warmup, args.explain)
    result = {
        "benchmark": "inbox",
        "postgres": connection.cursor().connection.info.server_version,
        "data": facts,
        "generate_seconds": generated,
        "requests": {
            "how": "full Django stack in process (test Client), session signed in with a "
            "verified second factor; time around client.get; db_ms is time inside the "
            "database driver during the request",
            **measured["per_endpoint"],
        },
        "missed_target": measured["missed_target"],
        "load_average_1min": measured["load_average_1min"],
        "targets": {"p95_ms": TARGET_P95_MS},
    }
    print(json.dumps(result, indent=2))
    if not args.keep:
        _drop_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
