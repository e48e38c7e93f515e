"""``make run`` and ``make test``: bootstrap, then serve or test.

``run``: start embedded services when none are configured, migrate, seed the
demo, print URLs and logins, and run web, worker, provisioning worker and beat
(honcho) until Ctrl-C. ``test``: the same bootstrap, then pytest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from parley import devstack

BASE_DIR = Path(__file__).resolve().parent.parent
PROCFILE = BASE_DIR / "Procfile.dev"


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
        "    Ctrl-C stops everything.\n",
        flush=True,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "honcho", "-f", str(PROCFILE), "start"], cwd=BASE_DIR, env=env
    )
    try:
        code = proc.wait()
        return 0 if code in (130, -signal.SIGINT) else code  # stopped by Ctrl-C: a normal end
    except KeyboardInterrupt:
        # Ctrl-C reaches honcho too (same process group); a lone SIGINT to us
        # (e.g. from a supervisor) is passed on. Either way honcho stops its
        # processes, then we stop the embedded services.
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return 0
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
