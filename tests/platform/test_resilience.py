"""Faults the core must ride through: the real PostgreSQL, then the real Redis,
restarted under a running web server, worker and beat.

Its own PostgreSQL and Redis (``parley.devstack`` in a temporary state folder),
so stopping them leaves the suite's services alone. Web, worker and beat run
under ``make run``'s supervisor, which would restart a process that died: the
test asserts each was started exactly once. During each outage every answer is
a 503 (never a 500), except signed webhooks while Redis is down (kept, 200); afterwards everything answers normally with no manual step.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from celery import Celery

from connectors.channels import signature_header
from parley.devrun import Supervisor
from tests import support

pytestmark = pytest.mark.slow

TENANT_HOST = "fault.localhost"
# Settings and services come from the temporary state folder, never the suite's.
_SUITE_ONLY = (
    "DATABASE_URL",
    "DATABASE_OWNER_URL",
    "DATABASE_SUPERUSER_URL",
    "REDIS_URL",
    "PARLEY_AUDIT_SIGNING_KEY_FILE",
    "PARLEY_LOCAL_KEK_FILE",
    "PARLEY_TEST_DB_NAME",
    "PARLEY_TEST_REDIS_DB",
)

SEED = """
import json
from django.contrib.auth import get_user_model
from django_tenants.utils import tenant_context
from connectors import channels
from tenants.models import Tenant
from tenants.services import tenant_create

tenant_create(slug="fault", name="Fault", domain="fault.localhost", owner_email="owner@fault.test")
with tenant_context(Tenant.objects.get(slug="fault")):
    owner = get_user_model().objects.get(email="owner@fault.test")
    channel, secret = channels.channel_create(
        by=owner, name="Fault channel", outbound_url="https://integration.example/replies"
    )
print(json.dumps({"public_id": channel.public_id, "secret": secret}))
"""


class Stack:
    """PostgreSQL, Redis, and the processes of ``make run``, in a temporary folder."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="parley-fault-", dir="/tmp"))
        self.env = {k: v for k, v in os.environ.items() if k not in _SUITE_ONLY}
        self.env.update(
            PARLEY_STATE_DIR=str(self.dir),
            DJANGO_SETTINGS_MODULE="parley.settings",
            PARLEY_ENV="test",
            PARLEY_HEARTBEAT_SECONDS="1",  # beat asks the database every second
            PARLEY_HEARTBEAT_MAX_AGE="6",  # /healthz is 200 only with a fresh beat → worker
            PARLEY_RETRY_AFTER_SECONDS="7",
        )
        self.port = support.free_port()
        self.out = io.StringIO()
        self.supervisor: Supervisor | None = None
        self.thread: threading.Thread | None = None

    def devstack(self, command: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "parley.devstack", command],
            cwd=support.BASE_DIR,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def manage(self, *args: str, owner: bool = False) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=support.BASE_DIR,
            env={**self.env, "PARLEY_DB_ROLE": "owner" if owner else "app"},
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def services(self) -> dict[str, str]:
        values = {}
        for line in (self.dir / "services.env").read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                values[key] = value
        return values

    def start(self) -> None:
        py = sys.executable
        self.supervisor = Supervisor(
            {
                "web": f"{py} manage.py runserver 127.0.0.1:{self.port} --noreload",
                "worker": f"{py} -m celery -A parley worker -Q default -c 1 -n fault@%h -l info "
                "--without-mingle --without-gossip",
                "beat": f"{py} -m celery -A parley beat -l info "
                f"-s {self.dir / 'celerybeat-schedule'}",
            },
            env=self.env,
            out=self.out,
        )
        self.thread = threading.Thread(target=self.supervisor.run, daemon=True)
        self.thread.start()

    def log(self) -> str:
        return self.out.getvalue()

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
            self.thread.join(30)
        subprocess.run(
            [sys.executable, "-m", "parley.devstack", "down"],
            cwd=support.BASE_DIR,
            env=self.env,
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack():
    stack = Stack()
    try:
        stack.devstack("up")
        stack.manage("parley_migrate", owner=True)
        seeded = stack.manage("shell", "-c", SEED, owner=True)
        stack.channel = json.loads(seeded.strip().splitlines()[-1])
        stack.start()
        yield stack
    finally:
        stack.stop()


def request(stack, path, *, host=TENANT_HOST, method="GET", body=None, headers=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{stack.port}{path}",
        data=body,
        method=method,
        headers={"Host": host, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as response:  # noqa: S310 - loopback
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except OSError:
        return None, {}, b""  # the server itself not answering (still starting)


def webhook(stack, ext_id):
    raw = json.dumps(
        {"type": "message", "id": ext_id, "contact": {"id": "cust-1"}, "body": "hello"}
    ).encode()
    return request(
        stack,
        f"/webhooks/api/{stack.channel['public_id']}/",
        method="POST",
        body=raw,
        headers={
            "Content-Type": "application/json",
            "X-Parley-Signature": signature_header(secret=stack.channel["secret"], body=raw),
        },
    )


def token(stack):
    return request(
        stack,
        "/api/v1/auth/token/",
        method="POST",
        body=b'{"username": "owner@fault.test", "password": "not-the-password"}',
        headers={"Content-Type": "application/json"},
    )


def healthz(stack):
    return request(stack, "/healthz", host="localhost")


def wait_until(predicate, what: str, stack, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s\n{stack.log()[-6000:]}")
        time.sleep(0.3)


def assert_unavailable(answer, *, json_body: bool) -> None:
    status, headers, body = answer
    assert status == 503, (status, body[:500])
    assert headers["Retry-After"] == "7"
    if json_body:
        assert json.loads(body)["code"] == "service_unavailable"
    else:
        assert b"Parley is briefly unavailable" in body


def test_web_worker_and_beat_ride_through_postgres_and_redis_restarts(stack):
    seen: list[int | None] = []

    def ok(answer, *codes):
        seen.append(answer[0])
        return answer[0] in codes

    # Everything up: a page, a webhook, and a fresh worker heartbeat sent by beat.
    wait_until(lambda: ok(request(stack, "/login/"), 200), "web up", stack)
    wait_until(lambda: ok(healthz(stack), 200), "worker and beat up", stack)
    assert ok(webhook(stack, "before"), 200)
    probe = Celery(broker=stack.services()["REDIS_URL"], backend=stack.services()["REDIS_URL"])

    # --- PostgreSQL restart ---
    stack.devstack("stop-postgres")
    assert_unavailable(request(stack, "/login/"), json_body=False)
    assert_unavailable(webhook(stack, "during-pg"), json_body=True)
    assert_unavailable(token(stack), json_body=True)
    status, _, body = healthz(stack)
    assert status == 503 and json.loads(body)["checks"]["database"]["ok"] is False
    # A task that needs the database, sent now: it must wait and succeed, not fail.
    task = probe.send_task(
        "parley.tasks.resume_rekeys", queue="default", headers={"_schema_name": "public"}
    )
    # And one whose tenant must be looked up in the database before it can run.
    tenant_task = probe.send_task(
        "tenants.tasks.tenant_usage_refresh", queue="default", headers={"_schema_name": "t_fault"}
    )
    time.sleep(3)  # beat ticks (every second) meet the dead database
    stack.devstack("start-postgres")
    wait_until(lambda: ok(request(stack, "/login/"), 200, 503), "web answers", stack)
    wait_until(lambda: ok(request(stack, "/login/"), 200), "pages back after PostgreSQL", stack)
    wait_until(lambda: ok(webhook(stack, "after-pg"), 200), "webhooks back", stack)
    assert task.get(timeout=60) == 0  # retried until the database was back
    assert tenant_task.get(timeout=60)["schema"] == "t_fault"
    assert "beat: database unavailable" in stack.log()

    # --- Redis restart ---
    stack.devstack("stop-redis")
    # The event store is in PostgreSQL: a signed webhook is kept and answered (200).
    assert ok(webhook(stack, "during-redis"), 200)
    assert_unavailable(token(stack), json_body=True)
    status, _, body = healthz(stack)
    assert status == 503 and json.loads(body)["checks"]["redis"]["ok"] is False
    time.sleep(3)  # worker and beat lose the broker
    stack.devstack("start-redis")
    wait_until(lambda: ok(webhook(stack, "after-redis"), 200), "webhooks back", stack)
    # A heartbeat at most 6 s old: beat sends again and the worker runs it.
    wait_until(lambda: ok(healthz(stack), 200), "worker and beat back after Redis", stack)
    status, _, body = token(stack)
    assert status == 401, body  # wrong password, answered normally again

    # Nothing answered 500, and no process died (the supervisor would have restarted it).
    assert 500 not in seen and all(s is None or s < 500 or s == 503 for s in seen), seen
    for child in stack.supervisor.children:
        assert child.starts == 1, (child.name, stack.log()[-6000:])
        assert child.proc is not None and child.proc.poll() is None, child.name
