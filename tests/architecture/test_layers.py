"""The layer order (docs/architecture.md) holds: the import-linter contract in pyproject.toml.

No database: these read the source only.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import parley

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
RUFF = Path(sys.executable).with_name("ruff")


def _contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = (c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers")
    return contract


def test_layer_contract_is_kept():
    result = subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kernel_and_composition_name_every_parley_module():
    """parley mixes kernel and composition: each of its modules sits in exactly one layer,
    so a new one cannot slip past the contract unplaced."""
    placed = [
        name.strip()
        for layer in _contract()["layers"]
        for name in layer.split(":")
        if name.strip().startswith("parley.")
    ]
    assert len(placed) == len(set(placed))

    def is_placed(module: str) -> bool:
        return any(module == p or module.startswith(p + ".") for p in placed)

    modules = [
        m.name
        for m in pkgutil.walk_packages(parley.__path__, "parley.")
        if ".migrations" not in m.name and m.name != "parley.keyring"
    ]
    unplaced = [m for m in modules if not is_placed(m)]
    assert unplaced == []


def test_kernel_imports_no_app():
    kernel = _contract()["layers"][-1]
    assert "parley.keyring.fields" in kernel and "parley.celery" in kernel
    assert not any(app in kernel for app in ("audit", "accounts", "tenants", "conversations"))


def test_imports_are_at_the_top():
    """ruff's PLC0415 with the project's per-file exceptions: an import inside a function
    carries a noqa that says which start-up cycle it breaks."""
    result = subprocess.run(
        [str(RUFF), "check", "--select", "PLC0415", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
