"""The web and worker processes freeze their start-up heap (parley/heap.py): a full
garbage collection no longer walks Django, the apps and the URLconfs each time
(~95 ms with the GIL held: every thread of a gunicorn worker stood still).

Freezing is process-wide and cannot be undone for what it froze, so each check
runs in its own process: a plain interpreter, a real gunicorn with
platform/gunicorn.conf.py, a real Celery worker."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests import support

BASE_DIR = support.BASE_DIR
FROZEN = re.compile(r"start-up heap frozen: (\d+) objects")

PROBE = """
import gc, json, sys
import django
django.setup()
from parley.heap import freeze_startup_heap
before = 'parley.urls' in sys.modules or 'parley.urls_public' in sys.modules
frozen = freeze_startup_heap(load_urlconfs={load})
print(json.dumps({{
    "urls_before": before,
    "urls": 'parley.urls' in sys.modules and 'parley.urls_public' in sys.modules,
    "frozen": frozen,
    "still_tracked": len(gc.get_objects()),
    "reported": gc.get_freeze_count(),
}}))
"""


def _probe(load: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(load=load)],
        cwd=BASE_DIR,
        env=support.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_it_loads_the_urlconfs_collects_and_freezes_what_start_up_left():
    seen = _probe(load=True)
    assert seen["urls_before"] is False  # django.setup() alone does not load them
    assert seen["urls"] is True
    assert seen["frozen"] == seen["reported"] > 100_000
    # What a full collection still walks is what was made after the freeze.
    assert seen["still_tracked"] < seen["frozen"] // 20


@pytest.mark.slow
def test_without_the_urlconfs_it_still_freezes():
    seen = _probe(load=False)
    assert seen["urls"] is False
    assert seen["frozen"] > 100_000


def _wait_until_it_answers(port: int, proc: subprocess.Popen, log: Path) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"Host": settings.PARLEY_BASE_DOMAIN}
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return  # any answer: the app is loaded
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no answer:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.slow
def test_a_gunicorn_worker_freezes_its_heap_once_the_app_is_loaded(tmp_path):
    log, port = tmp_path / "web.log", support.free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own virtualenv's gunicorn
            support.gunicorn_command(port, "parley.wsgi:application"),
            cwd=BASE_DIR,
            env=support.subprocess_env(WEB_CONCURRENCY="1", GUNICORN_THREADS="1"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_it_answers(port, proc, log)  # the worker has imported parley.wsgi
        found = FROZEN.search(log.read_text(errors="replace"))
        assert found, log.read_text(errors="replace")[-3000:]
        assert int(found.group(1)) > 100_000
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
def test_a_celery_worker_process_freezes_its_heap():
    worker = support.Worker("heap-probe").start()  # a queue nothing is sent to
    try:
        found = FROZEN.search(worker.log.read_text(errors="replace"))
        assert found, worker.log.read_text()[-3000:]
        assert int(found.group(1)) > 100_000
    finally:
        worker.stop()
