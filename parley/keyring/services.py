"""Keyring actions taken by people (audited)."""

from __future__ import annotations

from django.db import connection, transaction

from audit.context import Actor
from audit.services import record
from parley.keyring import signing
from parley.keyring.rekey import rotate_and_schedule
from parley.models import RekeyJob

# What the audit detail calls each key: by what it protects. Not the purpose's
# own name: "credential" reads as a secret to the trail's redaction (it hides any
# value under such a name), and the version showed as "[redacted]".
AUDIT_KEY_NAMES = {"data": "data_key_version", "credential": "connector_key_version"}


def keys_rotate(*, actor: Actor | None = None) -> list[RekeyJob]:
    """Rotate the current tenant's data and credential keys; re-encrypt in the background."""
    from parley.tasks import rekey

    schema = connection.schema_name
    with transaction.atomic():
        jobs = rotate_and_schedule(schema=schema)
        record(
            "key.rotated",
            actor=actor,
            target_type="keyring",
            target_id=schema,
            details={
                AUDIT_KEY_NAMES.get(job.purpose, f"{job.purpose}_key_version"): job.target_version
                for job in jobs
            },
        )
        ids = [job.pk for job in jobs]
        transaction.on_commit(lambda: [rekey.delay(job_id) for job_id in ids])
    return jobs


def token_key_rotate(*, actor: Actor | None = None, immediately: bool = False) -> signing.Rotation:
    """Rotate the current tenant's API token-signing key, audited in the same transaction.

    Tokens signed with the previous key keep working through the grace window
    (``PARLEY_TOKEN_KEY_GRACE_SECONDS``), or stop at once with ``immediately``
    (a key believed leaked: everyone signs in again).
    """
    schema = connection.schema_name
    with transaction.atomic():
        rotation = signing.rotate(schema, immediately=immediately)
        record(
            "key.token_signing_rotated",
            actor=actor,
            target_type="keyring",
            target_id=schema,
            details={
                "kid": signing.kid_for(rotation.version),
                "previous_kid": rotation.previous and signing.kid_for(rotation.previous),
                "previous_valid_until": rotation.previous_valid_until
                and rotation.previous_valid_until.isoformat(),
                "immediately": immediately,
            },
        )
    return rotation
