"""platform/gunicorn.conf.py gives each worker its own listening socket (SO_REUSEPORT).

On one shared socket the first worker to wake accepts, and keep-alive connections
(the edge keeps 32 to each web container) stay with it: bench/webhooks.py saw all
16 of its connections on one of three workers in about a third of its runs, and that
worker's GIL capped the server at one core. Here a real gunicorn with the project's
config and three workers: each worker listens on its own socket, and connections
opened together land on every worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import support

BASE_DIR = support.BASE_DIR
WORKERS = 3


def _listening_sockets(port: int) -> int:
    """LISTEN sockets bound to ``port`` on 127.0.0.1, from /proc/net/tcp."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if row[1] == wanted and row[3] == "0A")


def _ask(sock: socket.socket) -> int:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return int(data.split(b"\r\n\r\n", 1)[1])


def _start(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, int, Path]:
    log, port = tmp_path / "web.log", support.free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own virtualenv's gunicorn
            support.gunicorn_command(port, "tests.platform.gunicorn_probe:application"),
            cwd=BASE_DIR,
            env={**os.environ, "WEB_CONCURRENCY": str(WORKERS), "GUNICORN_THREADS": "1", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    # Up when every worker answers (new connections, so each may reach another worker).
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(seen) < WORKERS:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                seen.add(_ask(sock))
        except OSError:
            time.sleep(0.1)
    if len(seen) < WORKERS:
        proc.kill()
        raise AssertionError(log.read_text(errors="replace")[-3000:])
    return proc, port, log


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads on Linux")
def test_each_worker_listens_on_its_own_socket_and_connections_reach_them_all(tmp_path):
    proc, port, _log = _start(tmp_path)
    try:
        assert _listening_sockets(port) == WORKERS
        # 40 keep-alive connections opened together, as an edge or a load generator
        # would: each worker takes some (a worker left out by chance: 3 x (2/3)^40).
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
        try:
            pids = [_ask(sock) for sock in socks]
            assert len(set(pids)) == WORKERS, pids
            # Each connection stays with its worker (keep-alive).
            assert [_ask(sock) for sock in socks] == pids
        finally:
            for sock in socks:
                sock.close()
    finally:
        _stop(proc)


@pytest.mark.slow
def test_gunicorn_reuse_port_0_keeps_one_shared_socket(tmp_path):
    proc, port, _log = _start(tmp_path, GUNICORN_REUSE_PORT="0")
    try:
        assert _listening_sockets(port) == 1
    finally:
        _stop(proc)
