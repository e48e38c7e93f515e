"""Shared parts of the channel benchmarks (bench/webhooks.py, bench/channel_reply.py).

* ``seed``: a tenant with WhatsApp channels (the shape Meta's webhooks have, signed
  with the channel's app secret) bound to inboxes, in the benchmark's own database;
* ``Server``: gunicorn on loopback with ``platform/gunicorn.conf.py`` (workers and
  threads from the command line), the app role, ``bench_settings`` (Parley plus the
  bare ``/bench/ok/`` floor view), access log to a file;
* ``Worker``: one Celery worker (``-c 1``) on the default queue; its log's path is
  printed on stderr (``BENCH_WORKER_LOG=info`` logs every task with its duration and
  result: what each drain sent, held back, returned);
* ``run_load``: a load generator in a separate process (asyncio, raw HTTP/1.1 over
  keep-alive connections: no client library in the measured loop), closed loop
  (N connections back to back) or open loop (a fixed rate, latency counted from the
  scheduled send time so a stalled server cannot hide its queue).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SLUG = "hookbench"
HOST = f"{SLUG}.localhost"
PHONE_ID = "106540352242922"
ACCESS_TOKEN = "EAAB-bench-token"  # noqa: S105 - a benchmark's local fake Graph API
REDIS_DB = 13  # the benchmark's own Redis database, flushed at start

TEMPLATE = json.loads(
    (BASE_DIR / "tests" / "fixtures" / "meta" / "wa_webhook_text.json").read_text()
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_for_bench() -> None:
    """Point REDIS_URL at the benchmark's Redis database and empty it."""
    from urllib.parse import urlsplit, urlunsplit

    import redis

    url = urlunsplit(urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{REDIS_DB}"))
    os.environ["REDIS_URL"] = url
    redis.Redis.from_url(url).flushdb()


def seed(*, channels: dict[str, str], graph_base_url: str = "") -> dict[str, str]:
    """WhatsApp channels ``{name: app_secret}``, each bound to a new inbox; ``{name: public_id}``.

    Every inbox is closed at all hours with an auto-reply, so each first message of
    a new sender queues exactly one reply (conversations.services.message_receive).
    """
    from django.db import connection
    from django_tenants.utils import tenant_context

    from connectors.models import Channel, ChannelCredential
    from connectors.services import credential_set
    from conversations.models import Inbox
    from tenants.models import Tenant

    settings = {"phone_number_id": PHONE_ID}
    if graph_base_url:
        settings["graph_base_url"] = graph_base_url
    out = {}
    with tenant_context(Tenant.objects.get(slug=SLUG)):
        for name, app_secret in channels.items():
            channel = Channel.objects.create(
                name=name, kind="whatsapp", public_id=f"bench-{name}", settings=settings
            )
            for role, kind, secret in (
                ("app_secret", "webhook_secret", app_secret),
                ("access_token", "access_token", ACCESS_TOKEN),
            ):
                credential = credential_set(
                    name=f"bench-{name}-{role}", kind=kind, connector="whatsapp", secret=secret
                )
                ChannelCredential.objects.create(channel=channel, role=role, credential=credential)
            Inbox.objects.create(
                name=name,
                channel=channel,
                business_hours={
                    day: [["00:00", "00:00"]]
                    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                },
                auto_reply="Thanks for your message: we are closed, we answer tomorrow.",
            )
            out[name] = channel.public_id
    connection.close()
    return out


def drop_database(name: str) -> None:
    import psycopg
    from django.db import connections

    from parley.dbroles import dsn_from_url

    connections.close_all()
    with psycopg.connect(dsn_from_url(os.environ["DATABASE_SUPERUSER_URL"]), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PARLEY_DB_ROLE="app",
        PARLEY_LOG_LEVEL="WARNING",
        # Still checked (a lease of 50 per round trip at this rate), never reached by the load.
        PARLEY_RATE_CHANNEL_WEBHOOK="10000000/min",
    )
    env.update(extra)
    return env


class Server:
    """gunicorn -c platform/gunicorn.conf.py on 127.0.0.1."""

    def __init__(self, *, workers: int, threads: int):
        self.workers, self.threads = workers, threads
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="parley-bench-web-"))
        self.proc: subprocess.Popen | None = None

    @property
    def config(self) -> dict:
        return {
            "server": "gunicorn (platform/gunicorn.conf.py, gthread)",
            "workers": self.workers,
            "threads": self.threads,
            "access_log": "on (to a file)",
        }

    def start(self) -> Server:
        log = (self.dir / "web.log").open("wb")
        print("web log:", self.dir / "web.log", file=sys.stderr)
        self.proc = subprocess.Popen(  # noqa: S603 - our own virtualenv's gunicorn
            [
                str(VENV_BIN / "gunicorn"),
                "-c",
                str(BASE_DIR / "platform" / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--pythonpath",
                str(BASE_DIR / "bench"),
                "parley.wsgi:application",
            ],
            cwd=BASE_DIR,
            env=_env(
                DJANGO_SETTINGS_MODULE="bench_settings",
                WEB_CONCURRENCY=str(self.workers),
                GUNICORN_THREADS=str(self.threads),
                GUNICORN_LOG_LEVEL=os.environ.get("BENCH_WEB_LOG", "warning"),
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        # Ready when every worker has answered: gunicorn accepts as soon as its first
        # worker is up, and a worker still importing the project (about 3 s of a
        # core) would take CPU from the first phase measured (the floor's).
        deadline = time.monotonic() + 60
        answered: set[int] = set()
        while time.monotonic() < deadline:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{self.port}/bench/ok/", headers={"Host": HOST}
                )
                with urllib.request.urlopen(req, timeout=5) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        answered.add(json.loads(response.read())["worker"])
                        if len(answered) >= self.workers:
                            return self
                        continue
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        sys.exit("gunicorn did not answer:\n" + (self.dir / "web.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


class Worker:
    """One Celery worker instance on the default queue: ``concurrency`` prefork
    processes (1: one task at a time)."""

    def __init__(self, concurrency: int = 1):
        self.dir = Path(tempfile.mkdtemp(prefix="parley-bench-worker-"))
        self.proc: subprocess.Popen | None = None
        self.concurrency = concurrency

    def start(self) -> Worker:
        log = (self.dir / "worker.log").open("wb")
        print("worker log:", self.dir / "worker.log", file=sys.stderr)
        self.proc = subprocess.Popen(  # noqa: S603 - our own virtualenv's celery
            [
                str(VENV_BIN / "celery"),
                "-A",
                "parley",
                "worker",
                "-Q",
                "default",
                "-c",
                str(self.concurrency),
                "-n",
                "bench@%h",
                "-l",
                os.environ.get("BENCH_WORKER_LOG", "warning"),
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=BASE_DIR,
            env=_env(DJANGO_SETTINGS_MODULE="parley.settings"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def log(self) -> str:
        return (self.dir / "worker.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


# --- payloads -----------------------------------------------------------------------------------


def whatsapp_payload(*, first: int, count: int, run: str, sender_per_message: bool) -> bytes:
    """A WhatsApp webhook with ``count`` text messages (ids ``wamid.<run>.<n>``)."""
    document = json.loads(json.dumps(TEMPLATE))
    value = document["entry"][0]["changes"][0]["value"]
    template = value["messages"][0]
    messages, contacts = [], []
    for n in range(first, first + count):
        sender = f"1650{n:09d}" if sender_per_message else template["from"]
        messages.append({**template, "id": f"wamid.{run}.{n}", "from": sender})
        if sender_per_message or not contacts:
            contacts.append({"profile": {"name": f"Bench {n}"}, "wa_id": sender})
    value["messages"], value["contacts"] = messages, contacts
    return json.dumps(document, separators=(",", ":")).encode()


def signed_request(path: str, body: bytes, app_secret: str | None) -> bytes:
    headers = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if app_secret is not None:
        mac = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
        headers.append(f"X-Hub-Signature-256: sha256={mac}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


# --- the load generator (a separate process) -----------------------------------------------------


ATTEMPTS = 6


class _Pool:
    def __init__(self, port: int):
        self.port = port
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.retries = 0

    async def _fresh(self):
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, raw: bytes) -> int:
        """The status of one request; a connection the server dropped before
        answering (a worker recycled by gunicorn's max_requests, an idle keep-alive
        closed), or reset while connecting (the connections queued on a recycled
        worker's own SO_REUSEPORT socket, on a host without
        ``net.ipv4.tcp_migrate_req``), is retried on a fresh one, and counted in
        ``retries``."""
        for attempt in range(ATTEMPTS):
            reused = bool(self.free)
            writer = None
            try:
                reader, writer = self.free.pop() if reused else await self._fresh()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                if writer is not None:
                    writer.close()
                if attempt < ATTEMPTS - 1:
                    self.retries += 1
                    await asyncio.sleep(0.02 * attempt)  # let a recycled worker's successor start
                    continue
                raise
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            if length:
                await reader.readexactly(length)
            if close:
                writer.close()
            else:
                self.free.append((reader, writer))
            return status
        raise ConnectionError("unreachable")


async def _closed(port, make, *, concurrency, duration, warmup):
    pool = _Pool(port)
    counter = iter(range(10**9))
    samples, statuses = [], {}
    start = time.monotonic()
    measure_from, end = start + warmup, start + warmup + duration

    async def loop():
        while (now := time.monotonic()) < end:
            raw = make(next(counter))
            status = await pool.request(raw)
            done = time.monotonic()
            if now >= measure_from:
                samples.append((now, done - now))
                statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    if pool.retries:
        statuses["retried_connections"] = pool.retries
    return samples, statuses


async def _open(port, make, *, rate, count):
    pool = _Pool(port)
    samples, statuses = [], {}
    start = time.monotonic() + 0.2

    async def one(i, at):
        raw = make(i)
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        status = await pool.request(raw)
        samples.append((at, time.monotonic() - at, i))
        statuses[status] = statuses.get(status, 0) + 1

    tasks = []
    for i in range(count):
        at = start + i / rate
        delay = at - 0.05 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, at)))
    await asyncio.gather(*tasks)
    if pool.retries:
        statuses["retried_connections"] = pool.retries
    return samples, statuses


def quiet_heap() -> None:
    """Keep this process's heap (Django, the apps, the seed data) out of the garbage
    collector's full sweeps, as parley/heap.py does for the servers measured.

    The load generator is forked from the benchmark's process, so it starts with
    every object Django loaded (~220,000); a full collection while it sends walked
    them all for 170-210 ms, and every request due meanwhile went out late, counted
    as the server's latency from its scheduled send time (one pause: ~40 requests
    over 150 ms, more than a p99 at 200/s can absorb). The fake Graph API of
    bench/channel_reply.py answers and times replies in the benchmark's own process."""
    from parley.heap import freeze_startup_heap  # after django.setup(): parley reads settings

    freeze_startup_heap(load_urlconfs=False)


def _child(queue, port, make, mode, kwargs):
    quiet_heap()  # the inherited heap: the requests it sends are its own, young objects
    try:
        runner = _closed if mode == "closed" else _open
        queue.put(asyncio.run(runner(port, make, **kwargs)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        queue.put(exc)


def run_load(port: int, make, mode: str, **kwargs):
    """``(samples, statuses)`` from a load-generator process; ``make(i)`` builds request ``i``.

    Closed: ``concurrency``, ``duration``, ``warmup`` seconds; samples ``(sent, latency)``.
    Open: ``rate`` per second, ``count`` requests; samples ``(scheduled, latency, i)``.
    """
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    proc = context.Process(target=_child, args=(queue, port, make, mode, kwargs))
    proc.start()
    result = queue.get()
    proc.join()
    if isinstance(result, BaseException):
        raise result
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def ms(value: float) -> float:
    return round(value * 1000, 2)


def summary(latencies: list[float]) -> dict:
    return {
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(max(latencies)) if latencies else None,
        "mean_ms": ms(statistics.fmean(latencies)) if latencies else None,
    }
