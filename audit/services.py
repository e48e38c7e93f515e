"""Writing to the audit trail: :func:`record`, the one way in.

``record`` writes inside the caller's transaction (an action and its event
commit or roll back together) and serialises writers of one schema on a
transaction-scoped advisory lock, so concurrent writers form one unbroken
chain: each event's ``prev_hash`` is the hash of the event before it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from django.db import connection, transaction

from audit import catalogue, context
from audit.hashing import clean_details, content_hash, normalise_ip
from audit.models import AuditEvent, Outcome

logger = logging.getLogger(__name__)


class UnknownActionError(ValueError):
    pass


def record(
    action: str,
    *,
    outcome: str = Outcome.ALLOWED,
    target_type: str = "",
    target_id: Any = "",
    details: dict[str, Any] | None = None,
    actor: context.Actor | None = None,
    request=None,
) -> AuditEvent:
    """Append one event to the current schema's chain, in the caller's transaction."""
    if not catalogue.is_known(action):
        raise UnknownActionError(f"{action!r} is not in audit.catalogue.ACTIONS")
    if outcome not in Outcome.values:
        raise ValueError(f"unknown outcome {outcome!r}")
    request = request if request is not None else context.current_request()
    if actor is None:
        actor = context.actor_from_request(request) if request is not None else context.SYSTEM
    fields: dict[str, Any] = {
        "actor_kind": actor.kind,
        "actor_id": str(actor.id)[:64],
        "actor_name": str(actor.name)[:200],
        "action": action,
        "target_type": str(target_type)[:80],
        "target_id": str(target_id)[:80],
        "outcome": outcome,
        "ip": normalise_ip(context.client_ip(request)) if request is not None else None,
        "user_agent": (
            request.META.get("HTTP_USER_AGENT", "")[:300] if request is not None else ""
        ),
        "request_id": (getattr(request, "id", "") or "")[:64] if request is not None else "",
        "details": clean_details(details or {}),
    }
    digest = content_hash(fields)
    # One statement under this schema's chain lock (held until the caller's
    # transaction commits): audit_append() takes the lock, reads the head,
    # computes the link hash and inserts. See audit/migrations/0002.
    # Outside a transaction the statement is its own transaction (one round
    # trip, lock released at once); inside one, the event commits or rolls
    # back with the caller's action.
    block = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with block, connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM audit_append(%s, %s, %s, %s, %s, %s, %s, %s, %s::inet, %s, %s, %s::jsonb)",
            [
                digest,
                fields["actor_kind"],
                fields["actor_id"],
                fields["actor_name"],
                fields["action"],
                fields["target_type"],
                fields["target_id"],
                fields["outcome"],
                fields["ip"],
                fields["user_agent"],
                fields["request_id"],
                json.dumps(fields["details"]),
            ],
        )
        event_id, seq, occurred_at, prev_hash, link = cursor.fetchone()
    event = AuditEvent(
        id=event_id, seq=seq, occurred_at=occurred_at, prev_hash=prev_hash, hash=link, **fields
    )
    event._state.adding = False
    return event


def record_denied(request) -> None:
    """A 403 answered to ``request``: who asked for what."""
    try:
        with transaction.atomic():
            record(
                "access.denied",
                outcome=Outcome.DENIED,
                target_type="url",
                target_id=request.path[:80],
                details={"method": request.method, "path": request.path[:300]},
                request=request,
            )
    except Exception:
        # Never turn a refusal into a 500; the log says the event is missing.
        logger.exception(
            "could not record access.denied for request %s", getattr(request, "id", "-")
        )


def sink_save(*, form, actor=None):
    """Create or change a SIEM sink from a valid SinkForm, audited."""
    creating = form.instance.pk is None
    with transaction.atomic():
        sink = form.save()
        record(
            "audit.sink.created" if creating else "audit.sink.updated",
            actor=actor,
            target_type="audit_sink",
            target_id=sink.pk,
            details={
                "name": sink.name,
                "kind": sink.kind,
                "enabled": sink.enabled,
                "fields": list(form.changed_data),
            },
        )
    return sink


def sink_delete(*, sink, actor=None) -> None:
    with transaction.atomic():
        record(
            "audit.sink.deleted",
            actor=actor,
            target_type="audit_sink",
            target_id=sink.pk,
            details={"name": sink.name},
        )
        sink.delete()


def export_archive(
    *, fmt: str, since=None, until=None, tenant_label: str, actor=None
) -> tuple[bytes, dict]:
    """A ZIP with the export, its signed manifest and the platform's public key; audited."""
    import io
    import json
    import zipfile

    from audit import signing
    from audit.export import write_export

    with transaction.atomic():
        data = io.BytesIO()
        manifest = write_export(
            out=data,
            fmt=fmt,
            schema=connection.schema_name,
            tenant=tenant_label,
            since=since,
            until=until,
        )
        record(
            "audit.exported",
            actor=actor,
            target_type="audit",
            target_id=tenant_label,
            details={"format": fmt, "count": manifest["count"], "sha256": manifest["sha256"]},
        )
    name = f"audit-{tenant_label}-{manifest['created_at'][:19].replace(':', '')}"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}.{fmt}", data.getvalue())
        zf.writestr(f"{name}.{fmt}.manifest.json", json.dumps(manifest, indent=2) + "\n")
        zf.writestr("platform-audit-public-key.pem", signing.public_key_pem())
        zf.writestr(
            "README.txt",
            "Check with: python manage.py audit_verify_export "
            f"{name}.{fmt} {name}.{fmt}.manifest.json --public-key platform-audit-public-key.pem\n",
        )
    return archive.getvalue(), manifest
