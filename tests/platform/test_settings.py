"""Settings: typed helpers refuse bad values; production refuses default secrets."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from parley import devstack, env
from tests.support import BASE_DIR

SIGNING_KEY = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n"
STRONG_SECRET = "x7Gq2vRk9Lm4Np8Ts1Wy5Zb3Cd6Fh0Jk2Mn5Pq8Rt1Vw4Xy7Za9Bc3De6Fg0Hj"


def test_it_parses_typed_values(monkeypatch):
    monkeypatch.setenv("P_BOOL", "yes")
    monkeypatch.setenv("P_INT", "42")
    monkeypatch.setenv("P_LIST", "a, b,,c")
    assert env.env_bool("P_BOOL", False) is True
    assert env.env_int("P_INT", 1, minimum=1, maximum=100) == 42
    assert env.env_list("P_LIST") == ["a", "b", "c"]
    assert env.env_str("P_MISSING", "fallback") == "fallback"


@pytest.mark.parametrize(
    ("name", "value", "call", "message"),
    [
        ("P_BOOL", "maybe", lambda: env.env_bool("P_BOOL", False), "is not a boolean"),
        ("P_INT", "ten", lambda: env.env_int("P_INT", 1), "is not an integer"),
        ("P_INT", "0", lambda: env.env_int("P_INT", 1, minimum=1), "below the minimum"),
        (
            "P_CHOICE",
            "prod",
            lambda: env.env_str("P_CHOICE", choices=("production",)),
            "is not one of",
        ),
    ],
)
def test_it_refuses_bad_values(monkeypatch, name, value, call, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        call()


def test_it_reads_secrets_from_files(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    monkeypatch.setenv("P_SECRET_FILE", str(secret))
    assert env.env_secret("P_SECRET") == "s3cr3t"
    monkeypatch.setenv("P_SECRET", "direct")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env.env_secret("P_SECRET")
    monkeypatch.delenv("P_SECRET")
    monkeypatch.setenv("P_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env.env_secret("P_SECRET")


def _production(**extra: str) -> dict[str, str]:
    environment = {
        "PATH": "/usr/bin:/bin",
        "PARLEY_ENV": "production",
        "DJANGO_SETTINGS_MODULE": "parley.settings",
        "PARLEY_BASE_DOMAIN": "parley.example.com",
        "DATABASE_URL": "postgres://parley_app@db.invalid:5432/parley",
        "REDIS_URL": "redis://redis.invalid:6379/0",
        "PARLEY_AUDIT_SIGNING_KEY": SIGNING_KEY,
        "PARLEY_LOCAL_KEK": "ab" * 32,
    }
    environment.update(extra)
    return environment


def _manage(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, "PARLEY_SECRET_KEY (or PARLEY_SECRET_KEY_FILE) must be set in production."),
        (
            {
                "PARLEY_SECRET_KEY": "parley-development-only-secret-key-never-use-it-in-production-0123456789"
            },
            "is a default",
        ),
        ({"PARLEY_SECRET_KEY": "django-insecure-" + "a" * 50}, "is a default"),
        ({"PARLEY_SECRET_KEY": "short"}, "too short"),
    ],
)
def test_it_refuses_to_start_in_production_without_a_real_secret(extra, message):
    result = _manage(_production(**extra), "check")
    assert result.returncode != 0
    assert message in result.stderr


def test_it_refuses_to_start_in_production_without_an_audit_signing_key():
    environment = _production(PARLEY_SECRET_KEY=STRONG_SECRET)
    del environment["PARLEY_AUDIT_SIGNING_KEY"]
    result = _manage(environment, "check")
    assert result.returncode != 0
    assert "PARLEY_AUDIT_SIGNING_KEY (or _FILE) must be set in production" in result.stderr


def test_it_refuses_to_start_in_production_without_a_kek():
    environment = _production(PARLEY_SECRET_KEY=STRONG_SECRET)
    del environment["PARLEY_LOCAL_KEK"]
    result = _manage(environment, "check")
    assert result.returncode != 0
    assert "PARLEY_LOCAL_KEK (or _FILE) must be set in production" in result.stderr


@pytest.mark.parametrize(
    "extra",
    [
        {"PARLEY_META_SHARED_APP": "true"},
        {"PARLEY_META_APP_SECRET": "platform-secret"},  # on by default, verify token missing
        {"PARLEY_META_SHARED_APP": "true", "PARLEY_META_VERIFY_TOKEN": "platform-verify"},
    ],
)
def test_it_refuses_to_start_in_production_with_a_shared_meta_app_missing_a_secret(extra):
    result = _manage(_production(PARLEY_SECRET_KEY=STRONG_SECRET, **extra), "check")
    assert result.returncode != 0
    assert "PARLEY_META_APP_SECRET and PARLEY_META_VERIFY_TOKEN" in result.stderr


def test_it_refuses_to_start_in_production_without_a_database_url():
    environment = _production(PARLEY_SECRET_KEY=STRONG_SECRET)
    del environment["DATABASE_URL"]
    result = _manage(environment, "check")
    assert result.returncode != 0
    assert "DATABASE_URL is not set." in result.stderr


def test_it_passes_check_deploy_in_production(tmp_path):
    secret_file = tmp_path / "secret_key"
    secret_file.write_text(STRONG_SECRET)
    result = _manage(
        _production(PARLEY_SECRET_KEY_FILE=str(secret_file)),
        "check",
        "--deploy",
        "--fail-level",
        "DEBUG",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize("region", ["XX", "gbr", "1²"])
def test_it_refuses_an_unknown_default_phone_region(region):
    result = _manage(
        _production(PARLEY_SECRET_KEY=STRONG_SECRET, PARLEY_DEFAULT_PHONE_REGION=region), "check"
    )
    assert result.returncode != 0
    assert "is not a region phonenumbers knows" in result.stderr


def _development(state_dir, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "PARLEY_ENV": "development",
        "DJANGO_SETTINGS_MODULE": "parley.settings",
        "PARLEY_STATE_DIR": str(state_dir),
        "DATABASE_URL": "postgres://parley_app@db.invalid:5432/parley",
        "REDIS_URL": "redis://redis.invalid:6379/0",
        **extra,
    }


def _secret_key_of(environment: dict[str, str]) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            # The settings module alone decides the key; django.setup() (every app
            # imported, ~1.5 s a process) would add nothing to what is checked.
            "from django.conf import settings; print(settings.SECRET_KEY)",
        ],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_it_generates_the_development_secret_key_into_the_state_folder(tmp_path):
    """No secret key has a default in code: each development state folder makes its own."""
    first, second = tmp_path / "one", tmp_path / "two"
    key = _secret_key_of(_development(first))
    stored = first / "secrets" / "secret-key"
    assert key == stored.read_text().strip() and len(key) >= 50
    assert stored.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert _secret_key_of(_development(first)) == key  # kept between starts
    assert _secret_key_of(_development(second)) != key
    published = "parley-development-only-secret-key-never-use-it-in-production-0123456789"
    assert key != published
    # What the environment gives still wins.
    assert _secret_key_of(_development(first, PARLEY_SECRET_KEY=STRONG_SECRET)) == STRONG_SECRET


def test_the_demo_password_is_generated_into_the_state_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("PARLEY_STATE_DIR", str(tmp_path / "one"))
    first = devstack.ensure_demo_password()
    stored = tmp_path / "one" / "secrets" / "demo-password"
    assert first == stored.read_text().strip() and len(first) >= 16
    assert stored.stat().st_mode & 0o077 == 0
    assert devstack.ensure_demo_password() == first  # kept between runs
    monkeypatch.setenv("PARLEY_STATE_DIR", str(tmp_path / "two"))
    assert devstack.ensure_demo_password() != first
    assert first != "parley-demo-password"  # the one earlier versions had in code
