"""The canonical encoding of an audit event and its SHA-256 chain hash.

The encoding is JSON with sorted keys and no spaces, timestamps in UTC with
microseconds, IP addresses in their compressed form. Anyone holding an export
can recompute every hash with this module alone (or ~20 lines elsewhere).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from datetime import UTC, datetime
from typing import Any

# What the actor did, where from: hashed (SHA-256 of canonical JSON) outside
# the chain lock.
CONTENT_FIELDS = (
    "actor_kind",
    "actor_id",
    "actor_name",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "ip",
    "user_agent",
    "request_id",
    "details",
)
# Every hashed field; the link hash binds position, time and predecessor:
#   hash = SHA-256("<seq>|<occurred_at>|<prev_hash>|<content_hash>")
# It is computed in the database (audit_seal()), under the chain lock.
HASHED_FIELDS = ("seq", "occurred_at", "prev_hash", *CONTENT_FIELDS)
# What an export carries per event: everything hashed, plus both hashes.
EXPORTED_FIELDS = (*HASHED_FIELDS, "content_hash", "hash")

_SECRET_KEY_RE = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|authori[sz]ation|cookie|credential|private[_-]?key|otp|body)",
    re.IGNORECASE,
)
REDACTED = "[redacted]"
_MAX_STRING = 1000


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalise_ip(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return str(ipaddress.ip_address(str(value)))


def clean_details(value: Any, *, _depth: int = 0) -> Any:
    """JSON-safe, bounded details with secret-looking keys redacted (fail closed)."""
    if _depth > 6:
        return "[too deep]"
    if isinstance(value, dict):
        cleaned = {}
        for key, item in list(value.items())[:50]:
            key = str(key)[:80]
            cleaned[key] = (
                REDACTED if _SECRET_KEY_RE.search(key) else clean_details(item, _depth=_depth + 1)
            )
        return cleaned
    if isinstance(value, (list, tuple)):
        return [clean_details(item, _depth=_depth + 1) for item in list(value)[:50]]
    if value is None or isinstance(value, (bool, int)):
        return value
    text = str(value).replace("\x00", "")
    return text[:_MAX_STRING]


def canonical(fields: dict[str, Any]) -> bytes:
    """Canonical JSON of an event's content (sorted keys, no spaces, UTF-8)."""
    data = {name: fields.get(name) for name in CONTENT_FIELDS}
    data["ip"] = normalise_ip(data["ip"])
    details = data["details"]
    if isinstance(details, (str, bytes)):
        details = json.loads(details)
    data["details"] = details or {}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


def link_hash(seq: int, occurred_at: datetime | str, prev_hash: str, content: str) -> str:
    stamp = format_timestamp(occurred_at) if isinstance(occurred_at, datetime) else occurred_at
    return hashlib.sha256(f"{seq}|{stamp}|{prev_hash}|{content}".encode()).hexdigest()


def event_hash(fields: dict[str, Any]) -> str:
    return link_hash(
        fields["seq"], fields["occurred_at"], fields["prev_hash"], content_hash(fields)
    )
