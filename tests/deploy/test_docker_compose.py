"""The production shape: docker-compose.yml, the edge, gunicorn, the image, the DB bootstrap.

No Docker engine is needed: compose only renders its configuration (``config``),
which is enough to check that the file is valid for Debian's docker-compose 1.29
and to read who gets which secret. No database either.
"""

from __future__ import annotations

import functools
import os
import re
import runpy
import secrets
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gunicorn.config import Config

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "platform"
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_TEMPLATE = PLATFORM / "nginx" / "templates" / "default.conf.template"
NGINX_CONF = PLATFORM / "nginx" / "nginx.conf"
GUNICORN_CONF = PLATFORM / "gunicorn.conf.py"
DOCKERFILE = PLATFORM / "Dockerfile"
INITDB_SCRIPT = PLATFORM / "postgres" / "initdb" / "10-roles.sh"

BASE_DOMAIN = "chat.parley.test"
OWNER_SECRET = "db_owner_password"
APP_SECRET = "db_app_password"
SUPERUSER_SECRET = "db_superuser_password"
OWNER_SERVICES = {"postgres", "migrate", "provisioning"}
APP_ROLE_SERVICES = {"web", "worker", "beat"}


def _compose_binary() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "docker-compose is not on PATH, so docker-compose.yml cannot be validated: "
            "install Debian's docker-compose package (apt-get install docker-compose)."
        )
    return binary


@functools.cache
def _rendered_config() -> str:
    """``docker-compose config`` of the real file (run once per session).

    Hermetic: no COMPOSE_*/PARLEY_* variables from the caller's shell, and an empty
    env file instead of a stray ./.env. compose 1.29 does not need the secret files
    to exist to render the configuration.
    """
    binary = _compose_binary()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COMPOSE_", "PARLEY_", "DOCKER_")) and key != "WEB_CONCURRENCY"
    }
    env["PARLEY_BASE_DOMAIN"] = BASE_DOMAIN
    with tempfile.TemporaryDirectory() as scratch:
        env_file = Path(scratch) / "empty.env"
        env_file.write_text("")
        result = subprocess.run(
            [binary, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return result.stdout


def _compose_config() -> dict:
    # Called from the test bodies, not a fixture: a missing docker-compose then FAILS
    # the test (pytest.fail) instead of erroring in set-up.
    return yaml.safe_load(_rendered_config())


def _secret_names(service: dict) -> set[str]:
    names = set()
    for entry in service.get("secrets") or []:
        names.add(entry["source"] if isinstance(entry, dict) else entry)
    return names


def _services_with(config: dict, secret: str) -> set[str]:
    return {
        name for name, service in config["services"].items() if secret in _secret_names(service)
    }


def _environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=value form
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def _uncommented(path: Path) -> str:
    return "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())


def _directives(path: Path, name: str) -> list[str]:
    """Values of an nginx directive, comments stripped."""
    return [
        value.strip() for value in re.findall(rf"(?m)^\s*{name}\s+([^;]*);", _uncommented(path))
    ]


# --- compose --------------------------------------------------------------------------


def test_it_is_a_valid_compose_file() -> None:
    compose_config = _compose_config()
    services = compose_config["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "migrate",
        "web",
        "worker",
        "provisioning",
        "beat",
        "edge",
    }
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7-alpine"
    assert "--appendonly" in services["redis"]["command"]
    assert services["edge"]["image"] == "nginx:1.27-alpine"
    published = {
        str(port.get("published")) if isinstance(port, dict) else port.split(":")[0]
        for port in services["edge"]["ports"]
    }
    assert published == {"80", "443"}
    # Only the edge faces the outside world.
    assert [name for name, service in services.items() if service.get("ports")] == ["edge"]

    # The release step runs once, as the owner, before anything that serves or works.
    assert services["migrate"]["command"] == ["python", "manage.py", "parley_migrate"]
    for name in ("web", "worker", "provisioning", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["edge"]["depends_on"]["web"]["condition"] == "service_healthy"

    # The variables reach the processes that read them.
    for name in ("migrate", "web", "worker", "provisioning", "beat"):
        env = _environment(services[name])
        assert env["PARLEY_ENV"] == "production", name
        assert env["PARLEY_BASE_DOMAIN"] == BASE_DOMAIN, name
        assert env["PARLEY_SECRET_KEY_FILE"] == "/run/secrets/parley_secret_key", name
        assert env["REDIS_URL"] == "redis://redis:6379/0", name
    assert _environment(services["edge"])["PARLEY_BASE_DOMAIN"] == BASE_DOMAIN

    web = services["web"]
    assert web["command"] == [
        "gunicorn",
        "-c",
        "platform/gunicorn.conf.py",
        "parley.wsgi:application",
    ]
    assert "/healthz" in " ".join(web["healthcheck"]["test"])
    assert "PARLEY_BASE_DOMAIN" in " ".join(web["healthcheck"]["test"])
    assert services["provisioning"]["command"] == [
        "celery",
        "-A",
        "parley",
        "worker",
        "-Q",
        "provisioning",
        "-c",
        "1",
        "-l",
        "info",
    ]
    assert services["worker"]["command"][:6] == [
        "celery",
        "-A",
        "parley",
        "worker",
        "-Q",
        "default",
    ]

    for name, secret in compose_config["secrets"].items():
        assert secret["file"] == str(ROOT / "secrets" / name), name


def test_it_keeps_the_owner_password_away_from_web_worker_beat() -> None:
    compose_config = _compose_config()
    services = compose_config["services"]
    assert _services_with(compose_config, OWNER_SECRET) == OWNER_SERVICES
    assert _services_with(compose_config, SUPERUSER_SECRET) == {"postgres"}
    for name in APP_ROLE_SERVICES:
        env = _environment(services[name])
        assert env["PARLEY_DB_ROLE"] == "app", name
        assert env["DATABASE_URL"] == "postgres://parley_app@postgres:5432/parley", name
        assert env["DATABASE_PASSWORD_FILE"] == f"/run/secrets/{APP_SECRET}", name
        assert APP_SECRET in _secret_names(services[name]), name
        assert not any(key.startswith("DATABASE_OWNER") for key in env), name
        assert not any("owner" in str(value) for value in env.values()), name
    for name in ("migrate", "provisioning"):
        env = _environment(services[name])
        assert env["PARLEY_DB_ROLE"] == "owner", name
        assert env["DATABASE_OWNER_URL"] == "postgres://parley_owner@postgres:5432/parley", name
        assert env["DATABASE_OWNER_PASSWORD_FILE"] == f"/run/secrets/{OWNER_SECRET}", name


def test_it_keeps_the_database_off_the_outside_network() -> None:
    compose_config = _compose_config()
    assert compose_config["networks"]["data"]["internal"] is True
    services = compose_config["services"]
    assert set(services["postgres"]["networks"]) == {"data"}
    assert set(services["redis"]["networks"]) == {"data"}
    assert set(services["edge"]["networks"]) == {"edge"}
    # Gunicorn trusts X-Forwarded-Proto from the edge network only.
    subnet = compose_config["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert _environment(services["web"])["FORWARDED_ALLOW_IPS"] == f"127.0.0.1,::1,{subnet}"


# --- edge ---------------------------------------------------------------------------------


def test_it_serves_tls13_only() -> None:
    template = NGINX_TEMPLATE.read_text()
    assert "ssl_protocols TLSv1.3;" in template
    for path in (NGINX_TEMPLATE, NGINX_CONF):
        text = path.read_text()
        for old in ("TLSv1.2", "TLSv1.1", "SSLv3"):
            assert old not in text, f"{path.name} mentions {old}"
        assert re.search(r"\bTLSv1(?!\.3)\b", text) is None, f"{path.name} allows TLSv1.0"
        protocols = _directives(path, "ssl_protocols")
        assert protocols, f"{path.name} sets no ssl_protocols"
        assert set(protocols) == {"TLSv1.3"}, f"{path.name}: ssl_protocols {protocols}"


def test_it_redirects_http_and_proxies_to_web_with_forwarding_headers() -> None:
    template = NGINX_TEMPLATE.read_text()
    assert (
        _directives(NGINX_TEMPLATE, "server_name").count(
            "${PARLEY_BASE_DOMAIN} *.${PARLEY_BASE_DOMAIN}"
        )
        == 2
    )
    assert "return 301 https://$host$request_uri;" in template
    assert "server web:8000;" in template
    headers = dict(
        value.split(None, 1) for value in _directives(NGINX_TEMPLATE, "proxy_set_header")
    )
    assert headers["Host"] == "$host"
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Request-ID"] == "$request_id"
    assert "$remote_addr" in headers["X-Forwarded-For"]
    assert any(
        value.startswith("Strict-Transport-Security")
        for value in _directives(NGINX_TEMPLATE, "add_header")
    )
    assert _directives(NGINX_CONF, "server_tokens") == ["off"]
    assert _directives(NGINX_CONF, "client_max_body_size") == ["1m"]
    # The edge log never carries a query string: no $request, $request_uri, $args.
    log_format = _uncommented(NGINX_CONF).split("log_format", 1)[1].split(";", 1)[0]
    for variable in (
        "$request ",
        '$request"',
        "$request_uri",
        "$args",
        "$query_string",
        "$http_referer",
    ):
        assert variable not in log_format, variable


# --- gunicorn -------------------------------------------------------------------------------


def _access_line(log_format: str | None, *, path: str, query: str) -> str:
    """One access log line as gunicorn would write it with platform/gunicorn.conf.py."""
    settings = runpy.run_path(str(GUNICORN_CONF))
    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", log_format or settings["access_log_format"])
    logger = settings["ParleyLogger"](config)
    captured: list[str] = []
    logger.access_log.handlers = [_Capture(captured)]
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"{path}?{query}",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://acme.{BASE_DOMAIN}/?{query}",
        "HTTP_COOKIE": "sessionid=COOKIE-SECRET",
    }
    request = SimpleNamespace(
        headers=[("X-REQUEST-ID", "req-123"), ("COOKIE", "sessionid=COOKIE-SECRET")]
    )
    response = SimpleNamespace(status="200 OK", headers=[], sent=10)
    logger.access(response, request, environ, timedelta(milliseconds=42))
    assert len(captured) == 1
    return captured[0]


class _Capture:
    level = 0

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def handle(self, record) -> None:  # logging.Handler's entry point
        self.lines.append(record.getMessage())


def test_it_keeps_query_strings_and_tokens_out_of_the_access_log() -> None:
    line = _access_line(None, path="/conversations/7/", query="token=QUERY-SECRET")
    assert line == "method=GET path=/conversations/7/ status=200 duration_ms=42 request_id=req-123"

    # Even a format asking for the request line, query, referrer or cookie gets nothing.
    line = _access_line(
        "%(r)s %(q)s %(f)s %({cookie}i)s %({query_string}e)s %(U)s",
        path="/conversations/7/",
        query="token=QUERY-SECRET",
    )
    assert "SECRET" not in line

    # One-time links carry their token in the path.
    token = f"{'c' * 6}-{secrets.token_hex(16)}"
    line = _access_line(None, path=f"/accounts/activate/MQ/{token}/", query="")
    assert token not in line
    assert "path=/accounts/activate/[redacted]/[redacted]/" in line

    # A path cannot forge a second log line.
    line = _access_line(None, path="/a\nmethod=GET path=/forged", query="")
    assert "\n" not in line


def test_it_configures_gunicorn_for_the_edge() -> None:
    settings = runpy.run_path(str(GUNICORN_CONF))
    assert settings["bind"] == "0.0.0.0:8000"
    assert settings["secure_scheme_headers"] == {"X-FORWARDED-PROTO": "https"}
    assert 1 <= settings["workers"] <= settings["MAX_DEFAULT_WORKERS"]
    assert settings["worker_class"] == "gthread"
    assert settings["keepalive"] > 4  # longer than the edge's upstream keepalive_timeout
    # Workers are recycled, but not every few seconds (each new one imports the project).
    assert (settings["max_requests"], settings["max_requests_jitter"]) == (10_000, 1_000)
    # A listening socket per worker (tests/platform/test_gunicorn_sockets.py), and the
    # web container moves a recycled worker's queued connections to another worker.
    assert settings["reuse_port"] is sys.platform.startswith("linux")
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    assert compose["services"]["web"]["sysctls"] == {"net.ipv4.tcp_migrate_req": "1"}


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("1", True), (" 1 ", True)])
def test_gunicorn_reuse_port_comes_from_the_environment(monkeypatch, value, expected) -> None:
    monkeypatch.setenv("GUNICORN_REUSE_PORT", value)
    assert runpy.run_path(str(GUNICORN_CONF))["reuse_port"] is expected


@pytest.mark.parametrize("value", ["yes", "true", "2", "-1", "\u0661", "1 0", "0" * 40])
def test_a_bad_gunicorn_reuse_port_stops_the_start(monkeypatch, value) -> None:
    monkeypatch.setenv("GUNICORN_REUSE_PORT", value)
    with pytest.raises(SystemExit, match="GUNICORN_REUSE_PORT"):
        runpy.run_path(str(GUNICORN_CONF))


@pytest.mark.parametrize(
    ("value", "expected"), [("2500", (2500, 250)), ("0", (0, 0)), (" 7 ", (7, 0))]
)
def test_gunicorn_max_requests_comes_from_the_environment(monkeypatch, value, expected) -> None:
    monkeypatch.setenv("GUNICORN_MAX_REQUESTS", value)
    settings = runpy.run_path(str(GUNICORN_CONF))
    assert (settings["max_requests"], settings["max_requests_jitter"]) == expected


@pytest.mark.parametrize("value", ["-1", "many", "1e3", "\u0661\u0660", "1_000", "9" * 40])
def test_a_bad_gunicorn_max_requests_stops_the_start(monkeypatch, value) -> None:
    monkeypatch.setenv("GUNICORN_MAX_REQUESTS", value)
    with pytest.raises(SystemExit, match="GUNICORN_MAX_REQUESTS"):
        runpy.run_path(str(GUNICORN_CONF))


# --- image and database bootstrap -----------------------------------------------------------


def test_it_builds_an_image_that_runs_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    stages = re.split(r"(?m)^FROM\s+", text)[1:]
    assert stages[0].startswith("node:20-slim AS frontend")
    assert stages[-1].startswith("python:3.11-slim")
    final = stages[-1]
    # Node exists only in the first stage: the final image gets node_modules, not node.
    assert "npm" not in final and "nodejs" not in final
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in final
    assert "PARLEY_ENV=build python manage.py collectstatic --noinput" in final
    users = re.findall(r"(?m)^USER\s+(\S+)", final)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert 'CMD ["gunicorn", "-c", "platform/gunicorn.conf.py", "parley.wsgi:application"]' in final
    # The pruned source stage drops what must never be baked in.
    for path in (".git", ".venv", "secrets", "node_modules"):
        assert path in stages[1], path


def test_it_bootstraps_the_roles_with_quoted_passwords() -> None:
    assert os.access(INITDB_SCRIPT, os.X_OK), "the postgres image sources non-executable scripts"
    syntax = subprocess.run(["bash", "-n", str(INITDB_SCRIPT)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    sql = INITDB_SCRIPT.read_text()
    assert "ON_ERROR_STOP=1" in sql
    assert re.search(r'CREATE ROLE :"owner" LOGIN NOINHERIT', sql)
    assert "PASSWORD :'owner_password'" in sql and "PASSWORD :'app_password'" in sql
    # Passwords never appear on psql's command line (visible in ps).
    assert "-v owner_password" not in sql and "-v app_password" not in sql
    for statement in (
        'ALTER SCHEMA public OWNER TO :"owner"',
        'REVOKE ALL ON DATABASE :"db" FROM PUBLIC',
        'GRANT CONNECT ON DATABASE :"db" TO :"app"',
        'SET ROLE :"owner"',
        'GRANT USAGE ON SCHEMA public TO :"app"',
        'ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT USAGE ON SCHEMAS TO :"app"',
        'ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app"',
        'ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" GRANT USAGE, SELECT ON SEQUENCES TO :"app"',
    ):
        assert statement in sql, statement
    assert not re.search(r'GRANT[^;]*(CREATE|TEMP)[^;]*TO :"app"', sql)


# --- static files ---------------------------------------------------------------------------


def _signing_key_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _settings_value(parley_env: str, expression: str) -> str:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PARLEY_", "DATABASE_"))
    }
    env.update(
        PARLEY_ENV=parley_env,
        PARLEY_SECRET_KEY=secrets.token_urlsafe(50),
        PARLEY_AUDIT_SIGNING_KEY=_signing_key_pem(),
        PARLEY_LOCAL_KEK="cd" * 32,
        DATABASE_URL="postgres://parley_app@db.invalid:5432/parley",
        REDIS_URL="redis://redis.invalid:6379/0",
        DJANGO_SETTINGS_MODULE="parley.settings",
    )
    if parley_env == "build":
        env.pop("DATABASE_URL")
        env.pop("REDIS_URL")
    result = subprocess.run(
        [sys.executable, "-c", f"from parley import settings; print({expression})"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_it_collects_static_files_for_the_storage_production_serves_from() -> None:
    """The image runs collectstatic with PARLEY_ENV=build and serves with production.

    If the two use different storages, production has no manifest and every page
    that uses {% static %} fails with "Missing staticfiles manifest entry".
    """
    expression = 'settings.STORAGES["staticfiles"]["BACKEND"], settings.STATIC_ROOT'
    assert _settings_value("build", expression) == _settings_value("production", expression)


# --- layout ---------------------------------------------------------------------------------


def test_it_has_no_platform_package() -> None:
    assert not (PLATFORM / "__init__.py").exists(), (
        "platform/__init__.py would make platform/ a package shadowing the standard library's "
        "platform module (uuid calls platform.system() at import): delete it."
    )
    # From the repository root, `import platform` is still the standard library's.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import platform; print(platform.__file__); print(platform.system())",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    module_file = Path(result.stdout.splitlines()[0]).resolve()
    assert ROOT not in module_file.parents
