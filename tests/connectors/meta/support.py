"""Fixture readers for the Meta adapter tests (payloads in tests/fixtures/meta)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "meta"
TOKEN = "EAAG-test-token-0123456789"
APP_SECRET = "app-secret-for-tests"
VERIFY_TOKEN = "verify-token-for-tests"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def doc(name: str) -> Any:
    return json.loads(raw(name))


def dumps(document: Any) -> bytes:
    return json.dumps(document).encode()


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={mac}"}
