"""``make run`` and ``make test``: bootstrap, then serve or test.

``run``: start embedded services when none are configured, migrate, seed the
demo, print URLs and logins, and run web, worker, provisioning worker and beat
(``Procfile.dev``, under :class:`Supervisor`) until Ctrl-C. ``test``: the same
bootstrap, then pytest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from parley import devstack

BASE_DIR = Path(__file__).resolve().parent.parent
PROCFILE = BASE_DIR / "Procfile.dev"


# --- a small process supervisor --------------------------------------------------------------
#
# honcho (and foreman) stop every process when one exits: a PostgreSQL restart
# that ended beat used to end web and the workers too. Here a process that
# exits is started again after a back-off, and the others never notice.


def read_procfile(path: Path) -> dict[str, str]:
    """``name: command`` lines, in order; blank lines and ``#`` comments skipped."""
    commands: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        name, command = line.split(":", 1)
        commands[name.strip()] = command.strip()
    return commands


@dataclass
class _Child:
    name: str
    command: str
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    failures: int = 0  # consecutive quick exits: sets the back-off
    starts: int = 0


class Supervisor:
    """Run each Procfile process; restart one that exits, with back-off.

    The back-off doubles from ``backoff`` seconds up to ``backoff_max`` for
    each exit within ``stable_after`` seconds of its start, and starts over
    once a process has stayed up that long. Output lines are prefixed with the
    process name. Each child gets its own process group, so Ctrl-C reaches this
    supervisor only, which then stops the children (SIGTERM, then SIGKILL).
    """

    def __init__(
        self,
        commands: dict[str, str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path = BASE_DIR,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        stable_after: float = 60.0,
        out=None,
    ):
        self.children = [_Child(name, command) for name, command in commands.items()]
        self.env, self.cwd = env, cwd
        self.backoff, self.backoff_max, self.stable_after = backoff, backoff_max, stable_after
        self.out = out or sys.stdout
        self._width = max((len(c.name) for c in self.children), default=0)
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def say(self, name: str, text: str) -> None:
        with self._lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {name:<{self._width}} | {text}\n")
            self.out.flush()

    def _pump(self, child: _Child, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            self.say(child.name, raw.decode(errors="replace").rstrip())

    def _start(self, child: _Child) -> None:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {child.command}"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        child.proc, child.started_at = proc, time.monotonic()
        child.starts += 1
        self.say(child.name, f"started with pid {proc.pid}")
        threading.Thread(target=self._pump, args=(child, proc), daemon=True).start()

    def _reap(self, child: _Child) -> None:
        code = child.proc.returncode
        ran = time.monotonic() - child.started_at
        child.proc = None
        child.failures = 0 if ran >= self.stable_after else child.failures + 1
        delay = min(self.backoff * 2 ** max(child.failures - 1, 0), self.backoff_max)
        child.next_start = time.monotonic() + delay
        self.say(child.name, f"exited with status {code}; restarting in {delay:.0f}s")

    def poll(self) -> None:
        """One round: reap exited children, start those whose back-off is over."""
        now = time.monotonic()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                self._reap(child)
            if child.proc is None and now >= child.next_start and not self._stopping.is_set():
                self._start(child)

    def run(self) -> int:
        """Until stop() or SIGTERM/SIGINT; returns 0."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, lambda *_: self.stop()) if main else None
        try:
            while not self._stopping.is_set():
                self.poll()
                self._stopping.wait(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
            self.stop_all()
        return 0

    def stop(self) -> None:
        self._stopping.set()

    def stop_all(self, grace: float = 15.0) -> None:
        self._stopping.set()
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            self.say(child.name, "stopping")
            self._signal(child.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in running:
            try:
                child.proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self._signal(child.proc, signal.SIGKILL)
                child.proc.wait()

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int) -> None:
        # The whole process group: a worker's pool children too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


def _env_with_services() -> tuple[dict[str, str], bool]:
    had_pg = bool(os.environ.get("DATABASE_URL"))
    pg_was_running = (devstack.state_dir() / "pg" / "postmaster.pid").exists()
    services = devstack.up()
    env = dict(os.environ)
    env.update(services)
    # Procfile commands (python, celery) must be this virtualenv's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    started_here = not had_pg and not pg_was_running
    return env, started_here


def _manage(env: dict[str, str], *args: str, role: str = "app") -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**env, "PARLEY_DB_ROLE": role},
        check=True,
    )


def run() -> int:
    env, _ = _env_with_services()
    env.setdefault("PARLEY_ENV", "development")
    env["DJANGO_SETTINGS_MODULE"] = "parley.settings"
    print("==> migrating (owner role)", flush=True)
    _manage(env, "parley_migrate", role="owner")
    print("==> seeding the demo", flush=True)
    _manage(env, "parley_demo", role="owner")
    print(
        "\n==> Parley is starting: web http://localhost:8000/ (console), http://acme.localhost:8000/ (tenant)\n"
        "    health: http://localhost:8000/healthz   API docs: http://acme.localhost:8000/api/docs/\n"
        '    another terminal: `make manage ARGS="tenant_list"` reaches the same database.\n'
        "    A process that exits is restarted (back-off up to 30 s). Ctrl-C stops everything.\n",
        flush=True,
    )
    try:
        return Supervisor(read_procfile(PROCFILE), env=env).run()
    finally:
        if not os.environ.get("PARLEY_KEEP_SERVICES"):
            devstack.down()


def test(args: list[str]) -> int:
    env, started_here = _env_with_services()
    env["PARLEY_ENV"] = "test"
    # Importing parley (for devstack) set the default settings module in this
    # process's environment: the suite must run on the test settings.
    env["DJANGO_SETTINGS_MODULE"] = "parley.settings_test"
    try:
        return subprocess.run(
            [sys.executable, "-m", "pytest", *args], cwd=BASE_DIR, env=env
        ).returncode
    finally:
        if started_here:
            devstack.down()


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "test"):
        print("usage: python -m parley.devrun run|test [pytest args]", file=sys.stderr)
        return 2
    if sys.argv[1] == "run":
        return run()
    return test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
