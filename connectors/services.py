"""Credential vault: set, replace, test, use, delete. The secret is written, never read back."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, ProtectedError
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.context import Actor
from audit.services import record
from connectors.models import Credential
from parley.keyring import fields

TABLE, COLUMN, PURPOSE = "connectors_credential", "secret", "credential"
CONNECTOR_RE = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")
MAX_SECRET = 4096


def _clean_secret(secret: str) -> str:
    if not isinstance(secret, str) or not secret.strip():
        raise ValidationError({"secret": "The secret is empty."}, code="empty_secret")
    if len(secret) > MAX_SECRET:
        raise ValidationError(
            {"secret": f"The secret is longer than {MAX_SECRET} characters."}, code="too_long"
        )
    if "\x00" in secret:
        raise ValidationError(
            {"secret": "The secret contains a NUL character."}, code="invalid_secret"
        )
    return secret


def _seal(credential: Credential, secret: str) -> None:
    credential.allocate_pk()
    credential.secret_ct = fields.encrypt(
        secret,
        schema=connection.schema_name,
        table=TABLE,
        column=COLUMN,
        pk=credential.pk,
        purpose=PURPOSE,
    )
    credential.last4 = secret[-4:] if len(secret) >= 8 else ""
    now = timezone.now()
    credential.rotated_at = now
    credential.rotation_due_at = now + timedelta(days=settings.PARLEY_CREDENTIAL_ROTATION_DAYS)


def _audit(action: str, credential: Credential, actor: Actor | None, **extra) -> None:
    record(
        action,
        actor=actor,
        target_type="credential",
        target_id=credential.pk,
        details={
            "name": credential.name,
            "kind": credential.kind,
            "connector": credential.connector,
            **extra,
        },
    )


def credential_set(
    *, name: str, kind: str, connector: str, secret: str, actor: Actor | None = None
) -> Credential:
    """Store a new credential (``credential.set``)."""
    errors = {}
    if kind not in Credential.Kind.values:
        errors["kind"] = f"Unknown kind {kind!r}."
    if not CONNECTOR_RE.match(connector or ""):
        errors["connector"] = "Use 2-40 lowercase letters, digits, '-' or '_' (e.g. whatsapp)."
    if Credential.objects.filter(name=name).exists():
        errors["name"] = f"A credential named {name!r} exists: replace its secret instead."
    if errors:
        raise ValidationError(errors)
    secret = _clean_secret(secret)
    credential = Credential(name=name, kind=kind, connector=connector)
    credential.full_clean(exclude=["secret_ct", "last4", "rotated_at", "rotation_due_at"])
    with transaction.atomic():
        _seal(credential, secret)
        credential.save(force_insert=True)
        _audit("credential.set", credential, actor)
    return credential


def credential_replace(
    *, credential: Credential, secret: str, actor: Actor | None = None
) -> Credential:
    """Rotate a credential's secret (``credential.replaced``); resets the rotation due date."""
    secret = _clean_secret(secret)
    with transaction.atomic():
        _seal(credential, secret)
        credential.save(update_fields=["secret_ct", "last4", "rotated_at", "rotation_due_at"])
        _audit("credential.replaced", credential, actor)
        # Other processes see the new ciphertext and decrypt again; this one forgets now.
        credential_id = credential.pk
        transaction.on_commit(lambda: credentials_forget(credential_id))
    return credential


def credential_delete(*, credential: Credential, actor: Actor | None = None) -> None:

    try:
        with transaction.atomic():
            _audit("credential.deleted", credential, actor)
            credential_id = credential.pk
            credential.delete()
            transaction.on_commit(lambda: credentials_forget(credential_id))
    except ProtectedError as exc:
        raise ValidationError(
            f"{credential.name} signs a channel's messages: rotate the channel's secret instead "
            "of deleting it."
        ) from exc


# --- decrypting --------------------------------------------------------------------------------
#
# A channel's webhook secret is needed on every inbound event and its access token
# on every reply. Decrypting, counting and auditing each use wrote the credential's
# row and the tenant's audit chain per event, so every webhook of a channel queued
# on that row's lock and on the chain (docs/scaling.md, "Channels: measured").
# Callers that use a secret on every event pass ``reuse=True``: the plaintext this
# process decrypted is kept for REUSE_SECONDS, keyed on the schema, the row id, the
# purpose and a digest of the ciphertext as just read from the database. The
# caller always reads the credential row first (a deleted credential or channel,
# or a paused channel, is never looked up at all), and a replaced secret has a
# new ciphertext, so neither is ever served from here. What is recorded is each
# decryption: ``credential.used``, ``last_used_at`` and ``use_count`` (so under
# constant use ``last_used_at`` is at most REUSE_SECONDS old per process, and
# ``use_count`` counts decryptions, the same number as ``credential.used`` events).

REUSE_SECONDS = 60
REUSE_MAX_ENTRIES = 1024
_reused: dict[tuple[str, int, str, bytes], tuple[str, float]] = {}
_reuse_lock = threading.Lock()
# One decryption per key at a time: the threads that miss together (a process's
# first events, or the minute running out under load) wait for it instead of
# each decrypting, recording and auditing the same secret.
_filling: dict[tuple[str, int, str, bytes], threading.Lock] = {}


def _reuse_key(credential: Credential, purpose: str) -> tuple[str, int, str, bytes]:
    digest = hashlib.sha256(bytes(credential.secret_ct)).digest()
    return (connection.schema_name, credential.pk, purpose, digest)


@sensitive_variables("entry")
def _reused_secret(key) -> str | None:
    entry = _reused.get(key)
    if entry is None:
        return None
    if entry[1] <= time.monotonic():
        with _reuse_lock:
            _reused.pop(key, None)
        return None
    return entry[0]


@sensitive_variables("secret")
def _keep(key, secret: str) -> None:
    # Named "secret": the error reporter masks such locals in the closure's frame too.
    def store() -> None:
        now = time.monotonic()
        with _reuse_lock:
            if len(_reused) >= REUSE_MAX_ENTRIES:
                for stale in [k for k, (_, until) in _reused.items() if until <= now]:
                    del _reused[stale]
                if len(_reused) >= REUSE_MAX_ENTRIES:
                    _reused.clear()
            _reused[key] = (secret, now + REUSE_SECONDS)

    # Kept only once its use is recorded (committed): a rolled-back record leaves no reuse.
    transaction.on_commit(store)


def credentials_forget(credential_id: int | None = None) -> None:
    """Drop this process's decrypted secrets (of one credential, or all)."""
    with _reuse_lock:
        for key in [k for k in _reused if credential_id is None or k[1] == credential_id]:
            del _reused[key]
        for key in [k for k in _filling if credential_id is None or k[1] == credential_id]:
            del _filling[key]


def _fill_lock(key) -> threading.Lock:
    with _reuse_lock:
        if len(_filling) >= REUSE_MAX_ENTRIES:
            _filling.clear()
        return _filling.setdefault(key, threading.Lock())


@sensitive_variables("plaintext")
def credential_use(
    *, credential: Credential, purpose: str, actor: Actor | None = None, reuse: bool = False
) -> str:
    """Decrypt the secret for one use by ``purpose`` (audited ``credential.used``).

    The only code path that decrypts a credential. Callers use the value for
    the call at hand and drop it; it is never logged, stored or returned to a
    client. ``reuse``: a secret needed on every event (a channel's webhook secret
    or access token) may come from this process's decryption of the same
    ciphertext within the last ``REUSE_SECONDS`` (see above); each decryption is
    recorded, a reuse is not.
    """
    if not reuse:
        return _decrypt_and_record(credential, purpose, actor, key=None)
    key = _reuse_key(credential, purpose)
    plaintext = _reused_secret(key)
    if plaintext is not None:
        return plaintext
    with _fill_lock(key):
        plaintext = _reused_secret(key)  # another thread may have just decrypted it
        if plaintext is not None:
            return plaintext
        return _decrypt_and_record(credential, purpose, actor, key=key)


@sensitive_variables("plaintext")
def _decrypt_and_record(credential: Credential, purpose: str, actor: Actor | None, *, key) -> str:
    plaintext = fields.decrypt(
        credential.secret_ct,
        schema=connection.schema_name,
        table=TABLE,
        column=COLUMN,
        pk=credential.pk,
        purpose=PURPOSE,
    ).decode()
    with transaction.atomic():
        Credential.objects.filter(pk=credential.pk).update(
            last_used_at=timezone.now(), use_count=F("use_count") + 1
        )
        _audit(
            "credential.used",
            credential,
            actor,
            purpose=purpose[:80],
            **({"reused_for_seconds": REUSE_SECONDS} if key is not None else {}),
        )
        if key is not None:
            _keep(key, plaintext)
    return plaintext


def credential_test(*, credential: Credential, actor: Actor | None = None) -> bool:
    """Check that the stored secret decrypts with this tenant's key (connector-specific
    connection tests come with each connector)."""
    return bool(credential_use(credential=credential, purpose="test", actor=actor))
