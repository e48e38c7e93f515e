"""``make run``'s supervisor: a process that exits is restarted with back-off and
the others keep running (honcho stopped them all)."""

from __future__ import annotations

import io
import os
import sys
import threading
import time

import pytest

from parley.devrun import PROCFILE, Supervisor, read_procfile

pytestmark = pytest.mark.slow


def _wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_it_reads_the_procfile():
    assert list(read_procfile(PROCFILE)) == ["web", "worker", "provisioning", "beat"]


def test_it_restarts_a_process_that_exits_and_leaves_the_others_running(tmp_path):
    py = sys.executable
    out = io.StringIO()
    supervisor = Supervisor(
        {
            "steady": f"{py} -c 'import time; print(\"up\", flush=True); time.sleep(60)'",
            "crashy": f"{py} -c 'import sys; print(\"dying\", flush=True); sys.exit(1)'",
        },
        cwd=tmp_path,
        backoff=0.2,
        backoff_max=0.8,
        out=out,
    )
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    steady, crashy = supervisor.children
    try:
        _wait_for(lambda: crashy.starts >= 4)
        assert steady.starts == 1 and steady.proc.poll() is None
        steady_pid = steady.proc.pid
        log = out.getvalue()
        assert "crashy | exited with status 1; restarting in 0s" in log
        assert "steady | up" in log and "crashy | dying" in log
        # Back-off grows with each quick exit, up to the maximum.
        assert crashy.failures >= 3
    finally:
        supervisor.stop()
        thread.join(20)
    assert not thread.is_alive()
    # Stopping ends the children too.
    assert steady.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(steady_pid, 0)
