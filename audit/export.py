"""Exports of the audit trail (JSON Lines or CSV) with a signed manifest."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import IO, Any

from django.db.models import QuerySet
from django.utils import timezone

from audit import signing
from audit.hashing import EXPORTED_FIELDS, content_hash, format_timestamp, link_hash, normalise_ip
from audit.models import GENESIS_HASH, AuditEvent
from audit.selectors import EventFilter, event_list

MANIFEST_FORMAT = "parley-audit-export/1"
COLUMNS = list(EXPORTED_FIELDS)
FORMATS = ("jsonl", "csv")


def _event_dict(event: AuditEvent) -> dict[str, Any]:
    data = {name: getattr(event, name) for name in COLUMNS}
    data["occurred_at"] = format_timestamp(event.occurred_at)
    data["ip"] = normalise_ip(event.ip)
    return data


def events_in_range(
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    filters: EventFilter | None = None,
) -> QuerySet[AuditEvent]:
    """Events in chain order: a time range, optionally narrowed as the viewer's filters are."""
    filters = replace(filters or EventFilter(), since=since, until=until)
    return event_list(filters).order_by("seq")


class _HashingWriter:
    def __init__(self, out: IO[bytes]):
        self.out, self.digest, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.digest.update(data)
        self.size += len(data)


def _canonical_manifest(manifest: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def write_export(
    *,
    out: IO[bytes],
    fmt: str,
    schema: str,
    tenant: str,
    since: datetime | None = None,
    until: datetime | None = None,
    filters: EventFilter | None = None,
) -> dict[str, Any]:
    """Write the events to ``out`` and return the signed manifest.

    ``filters`` (actor, action, outcome) narrow the export to what the viewer
    shows; the manifest then names them and ``contiguous`` is false: each
    event's hash still checks, the links between them cannot.
    """
    narrowing = (filters or EventFilter()).narrowing()
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    writer = _HashingWriter(out)
    count, first, last = 0, None, None
    text_buffer = io.StringIO()
    csv_writer = (
        csv.DictWriter(text_buffer, fieldnames=COLUMNS, lineterminator="\n")
        if fmt == "csv"
        else None
    )
    if csv_writer:
        csv_writer.writeheader()
        writer.write(text_buffer.getvalue().encode())
    for event in events_in_range(since, until, filters=filters).iterator(chunk_size=5000):
        data = _event_dict(event)
        if csv_writer:
            text_buffer.seek(0)
            text_buffer.truncate()
            csv_writer.writerow(
                {
                    **data,
                    "details": json.dumps(data["details"], sort_keys=True),
                    "ip": data["ip"] or "",
                }
            )
            writer.write(text_buffer.getvalue().encode())
        else:
            line = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            writer.write(line.encode() + b"\n")
        count += 1
        first = first or data
        last = data
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "file_format": fmt,
        "tenant": tenant,
        "schema": schema,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "filters": narrowing,
        "contiguous": not narrowing,
        "count": count,
        "first_seq": first["seq"] if first else None,
        "last_seq": last["seq"] if last else None,
        "first_hash": first["hash"] if first else None,
        "last_hash": last["hash"] if last else None,
        "bytes": writer.size,
        "sha256": writer.digest.hexdigest(),
        "created_at": timezone.now().isoformat(),
        "key_id": signing.key_id(),
        "algorithm": "Ed25519",
    }
    manifest["signature"] = signing.sign(_canonical_manifest(manifest))
    return manifest


@dataclass
class ExportCheck:
    ok: bool
    problems: list[str]


def _parse_rows(data: bytes, fmt: str) -> list[dict[str, Any]]:
    text = data.decode("utf-8")
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line]
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        row["seq"] = int(row["seq"])
        row["details"] = json.loads(row["details"] or "{}")
        row["ip"] = row["ip"] or None
        rows.append(row)
    return rows


def verify_export(
    *, data: bytes, manifest: dict[str, Any], public_pem: str | None = None
) -> ExportCheck:
    """Check an export against its manifest: signature, digest, count and every event hash."""
    problems: list[str] = []
    public = (
        signing.load_public_pem(public_pem) if public_pem else signing.private_key().public_key()
    )
    if manifest.get("format") != MANIFEST_FORMAT:
        problems.append(f"unknown manifest format {manifest.get('format')!r}")
    if manifest.get("key_id") != signing.key_id(public):
        problems.append("the manifest was signed with another key")
    if not signing.verify(
        _canonical_manifest(manifest), str(manifest.get("signature", "")), public
    ):
        problems.append(
            "the manifest signature is invalid (the manifest was changed or not signed by this platform)"
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.get("sha256"):
        problems.append(
            f"the file's SHA-256 {digest[:16]}… differs from the manifest's: the file was changed"
        )
    if problems:
        return ExportCheck(ok=False, problems=problems)
    try:
        rows = _parse_rows(data, manifest.get("file_format", "jsonl"))
    except (ValueError, KeyError) as exc:
        return ExportCheck(ok=False, problems=[f"the file cannot be parsed: {exc}"])
    if len(rows) != manifest.get("count"):
        problems.append(f"{len(rows)} events in the file, {manifest.get('count')} in the manifest")
    # A filtered export (signed "contiguous": false) picks events out of the
    # chain: each event's hash is checked, the links between them cannot be.
    linked = manifest.get("contiguous") is not False
    prev = None
    for row in rows:
        digest = content_hash(row)
        if (
            digest != row["content_hash"]
            or link_hash(row["seq"], row["occurred_at"], row["prev_hash"], digest) != row["hash"]
        ):
            problems.append(f"event #{row['seq']} does not match its hash")
            break
        if prev is not None and linked and row["prev_hash"] != prev["hash"]:
            problems.append(f"event #{row['seq']} does not link to event #{prev['seq']}")
            break
        if prev is not None and not linked and row["seq"] <= prev["seq"]:
            problems.append(f"event #{row['seq']} is out of chain order")
            break
        if prev is None and row["seq"] == 1 and row["prev_hash"] != GENESIS_HASH:
            problems.append("event #1 does not start the chain")
            break
        prev = row
    return ExportCheck(ok=not problems, problems=problems)
