"""Writing to the audit trail: :func:`record`, the one way in.

``record`` inserts the event inside the caller's transaction (an action and its
event commit or roll back together), unsealed. Right after that transaction
commits, :func:`seal` chains every unsealed event of the schema under the
chain's advisory lock (SQL function ``audit_seal``): each gets the next
sequence number and ``hash = SHA-256(seq|occurred_at|prev_hash|content_hash)``.
Writers therefore never hold the chain lock for the length of their own
transaction, and one seal commits many events. A beat task seals whatever a
crashed process left behind.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

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
    fields["occurred_at"] = timezone.now()
    fields["content_hash"] = content_hash(fields)
    params = [
        fields["occurred_at"],
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
        fields["content_hash"],
    ]
    schema = connection.schema_name
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            # Part of the caller's action: stored now, chained once it commits
            # (and gone with it if it rolls back).
            cursor.execute(_INSERT, params)
            event = AuditEvent(id=cursor.fetchone()[0], **fields)
            transaction.on_commit(lambda: _seal_after_commit(schema))
        else:
            # An event on its own: insert and seal in one statement and one commit.
            cursor.execute(_INSERT_SEALED, params)
            event = AuditEvent(id=cursor.fetchone()[0], **fields)
    event._state.adding = False
    return event


_INSERT = (
    "INSERT INTO audit_auditevent (occurred_at, actor_kind, actor_id, actor_name, action, target_type, "
    "target_id, outcome, ip, user_agent, request_id, details, content_hash) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::inet, %s, %s, %s::jsonb, %s) RETURNING id"
)
_INSERT_SEALED = (
    "SELECT audit_record_sealed(%s, %s, %s, %s, %s, %s, %s, %s, %s::inet, %s, %s, %s::jsonb, %s)"
)


def _seal_after_commit(schema: str) -> None:
    # The action has committed: a failure here must not turn it into an error
    # page. The event is stored (unsealed) and the beat sealer chains it.
    try:
        seal(schema=schema)
    except Exception:
        logger.exception(
            "sealing audit events of %s failed; the periodic sealer will retry", schema
        )


def seal(*, schema: str | None = None, max_rows: int = 10_000) -> int:
    """Chain this schema's unsealed events (see migration audit/0002); returns how many.

    Runs in the current transaction if there is one (tests, the sealing task),
    otherwise as its own short transaction.
    """
    schema = schema or connection.schema_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT public.audit_seal(%s, %s)", [schema, max_rows])
        return cursor.fetchone()[0]


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


# Shipped in every export bundle, and quoted in docs/audit.md.
STANDALONE_VERIFIER = Path(__file__).resolve().parent / "bundle" / "verify_export.py"


def export_archive(
    *, fmt: str, since=None, until=None, filters=None, tenant_label: str, actor=None
) -> tuple[bytes, dict]:
    """A ZIP with the export, its signed manifest and the platform's public key; audited."""
    import io
    import json
    import zipfile

    from audit import signing
    from audit.export import write_export

    with transaction.atomic():
        seal()  # everything committed so far belongs in the export
        data = io.BytesIO()
        manifest = write_export(
            out=data,
            fmt=fmt,
            schema=connection.schema_name,
            tenant=tenant_label,
            since=since,
            until=until,
            filters=filters,
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
        zf.writestr("verify_export.py", STANDALONE_VERIFIER.read_text(encoding="utf-8"))
        zf.writestr(
            "README.txt",
            "Check this export without Parley (Python 3.10+ and the cryptography package):\n\n"
            "    pip install cryptography\n"
            f"    python3 verify_export.py {name}.{fmt} {name}.{fmt}.manifest.json "
            "platform-audit-public-key.pem\n\n"
            "Or, where Parley is installed:\n\n"
            f"    python manage.py audit_verify_export {name}.{fmt} {name}.{fmt}.manifest.json "
            "--public-key platform-audit-public-key.pem\n",
        )
    return archive.getvalue(), manifest
