"""Helpers shared by the suite: roles, tenants, clients, real worker processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import time as _time
from pathlib import Path

import dj_database_url
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test import Client, override_settings
from django_otp.oath import TOTP
from django_tenants.utils import schema_context

from accounts import throttles
from accounts.mfa import SESSION_OTP_AT
from accounts.models import TOTPDevice
from parley import devstack

BASE_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "parley-test-password-1"
TENANTS = {"acme": "acme.localhost", "globex": "globex.localhost"}
ROLES = ["owner", "admin", "agent", "marketer", "analyst", "integrator"]


def _env(name: str) -> str | None:
    return os.environ.get(name) or devstack.read_services_env().get(name)


def owner_settings() -> dict:
    url = _env("DATABASE_OWNER_URL")
    if not url:
        raise RuntimeError(
            "DATABASE_OWNER_URL is needed for the tests (the owner role runs migrations)."
        )
    return dj_database_url.parse(url)


@contextlib.contextmanager
def owner_role():
    """Reconnect the default alias as the owner role (outside any transaction)."""
    conn = connections["default"]
    if conn.in_atomic_block:
        raise RuntimeError("owner_role() must be entered before the test transaction starts")
    owner = owner_settings()
    keys = ("USER", "PASSWORD", "HOST", "PORT")
    saved = {k: conn.settings_dict.get(k) for k in keys}
    conn.close()
    conn.settings_dict.update({k: owner.get(k) or "" for k in keys})
    try:
        with override_settings(PARLEY_DB_ROLE="owner"):
            yield
    finally:
        conn.close()
        conn.settings_dict.update(saved)


def signed_in(
    tenant, who, *, client: Client | None = None, verified: bool = True, step_up: bool = True
) -> Client:
    """A client signed in as ``who`` (e-mail, username or user) at ``tenant``'s host.

    ``tenant`` is a Tenant or None for the platform console. ``verified`` gives
    the session a confirmed TOTP device (as after entering a code), and
    ``step_up`` makes that code fresh enough for sensitive actions.
    """
    schema = "public" if tenant is None else tenant.schema_name
    if client is None:
        client = console_client() if tenant is None else tenant_client(tenant.slug)
    with schema_context(schema):
        user = who
        if isinstance(who, str):
            user = get_user_model().objects.get(
                **({"email": who} if "@" in who else {"username": who})
            )
        client.force_login(user)
        if verified:
            device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
            if device is None:
                device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
            session = client.session
            session["otp_device_id"] = device.persistent_id
            if step_up:
                session[SESSION_OTP_AT] = int(_time.time())
            session.save()
    connection.set_schema_to_public()
    return client


def totp_now(device) -> str:
    """The current code of a TOTP device (as an authenticator app would show it)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = _time.time()
    return f"{totp.token():0{device.digits}d}"


def clear_rate_counters() -> None:
    """Delete rate-limit and lockout counters only (the test Redis database also holds
    Celery's queues, so never flush it mid-session)."""
    throttles.leases_forget()  # this process's unused leases (accounts.throttles.hit_leased)
    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in ("*:rl:*", "*login-fail*"):
        for key in client.scan_iter(match=pattern):
            client.delete(key)


def tenant_client(slug: str) -> Client:
    return Client(HTTP_HOST=TENANTS[slug])


def console_client() -> Client:
    return Client(HTTP_HOST=settings.PARLEY_BASE_DOMAIN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_command(port: int, app: str) -> list[str]:
    """gunicorn with the project's platform/gunicorn.conf.py on 127.0.0.1:``port``."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(BASE_DIR / "platform" / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        app,
    ]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(devstack.read_services_env())
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "parley.settings_test",
            "PARLEY_ENV": "test",
            "PARLEY_TEST_DB_NAME": settings.DATABASES["default"]["NAME"],
        }
    )
    env.update(extra)
    return env


class Worker:
    """A real ``celery worker`` process against the test database and Redis."""

    def __init__(self, queues: str, role: str = "app", extra_env: dict[str, str] | None = None):
        self.queues, self.role, self.extra_env = queues, role, extra_env or {}
        self.proc: subprocess.Popen | None = None
        name = f"test-worker-{queues.replace(',', '-')}-{os.getpid()}.log"
        self.log = Path(devstack.state_dir()) / name

    def start(self) -> Worker:
        env = subprocess_env(PARLEY_DB_ROLE=self.role, **self.extra_env)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "parley",
                "worker",
                "-Q",
                self.queues,
                "--pool",
                "solo",
                "-n",
                f"test-{self.queues}-{os.getpid()}@%h",
                "-l",
                "info",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log.read_text()[-3000:]}")
            if "ready." in self.log.read_text():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
