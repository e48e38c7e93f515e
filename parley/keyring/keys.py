"""Per-tenant data-encryption keys: create, version, unwrap (cached), rotate, destroy."""

from __future__ import annotations

import contextlib
import os
import threading
import time

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from parley.keyring.providers import KeyringError, provider
from parley.models import WrappedKey

Purpose = WrappedKey.Purpose
_CACHE_SECONDS = 300
# Which version is active, per (schema, purpose): re-read at most every few
# seconds. A write that still uses the previous version right after a rotation
# is caught by the re-encryption job's final check (rows_on_older_keys).
_ACTIVE_SECONDS = 5
_cache: dict[tuple[str, str, int], tuple[bytes, float]] = {}
_active: dict[tuple[str, str], tuple[int, float]] = {}
_lock = threading.Lock()


class KeyNotFound(KeyringError):
    pass


def context_for(schema: str, purpose: str, version: int) -> str:
    return f"parley-dek|{schema}|{purpose}|v{version}"


def _create(schema: str, purpose: str, version: int) -> WrappedKey:
    dek = os.urandom(32)
    kek = provider()
    return WrappedKey.objects.create(
        schema_name=schema,
        purpose=purpose,
        version=version,
        provider=kek.name,
        wrapped=kek.wrap(dek, context=context_for(schema, purpose, version)),
    )


def ensure_keys(schema: str) -> None:
    """Give ``schema`` an active key for every purpose (idempotent)."""
    for purpose in Purpose.values:
        if WrappedKey.objects.filter(
            schema_name=schema, purpose=purpose, state=WrappedKey.State.ACTIVE
        ).exists():
            continue
        latest = (
            WrappedKey.objects.filter(schema_name=schema, purpose=purpose)
            .order_by("-version")
            .first()
        )
        # Another process may create the same version at the same moment: theirs wins.
        with contextlib.suppress(IntegrityError), transaction.atomic():
            _create(schema, purpose, (latest.version + 1) if latest else 1)


def _unwrap(row: WrappedKey) -> bytes:
    if row.state == WrappedKey.State.DESTROYED or not row.wrapped:
        raise KeyNotFound(f"key {row.schema_name}/{row.purpose}/v{row.version} was destroyed")
    return provider().unwrap(
        row.wrapped, context=context_for(row.schema_name, row.purpose, row.version)
    )


def _cached(schema: str, purpose: str, version: int) -> bytes | None:
    entry = _cache.get((schema, purpose, version))
    if entry and entry[1] > time.monotonic():
        return entry[0]
    return None


def _remember(schema: str, purpose: str, version: int, key: bytes, *, active: bool = False) -> None:
    """Cache an unwrapped key, but only keys that are committed: a key read or
    created inside a transaction that later rolls back must not outlive it
    (its version number would be reused by the next key)."""
    def store() -> None:
        with _lock:
            _cache[(schema, purpose, version)] = (key, time.monotonic() + _CACHE_SECONDS)
            if active:
                _active[(schema, purpose)] = (version, time.monotonic() + _ACTIVE_SECONDS)

    if connection.in_atomic_block:
        transaction.on_commit(store)
    else:
        store()


def active_key(schema: str, purpose: str) -> tuple[int, bytes]:
    entry = _active.get((schema, purpose))
    if entry and entry[1] > time.monotonic():
        key = _cached(schema, purpose, entry[0])
        if key is not None:
            return entry[0], key
    row = WrappedKey.objects.filter(
        schema_name=schema, purpose=purpose, state=WrappedKey.State.ACTIVE
    ).first()
    if row is None:
        raise KeyNotFound(f"no active {purpose} key for {schema}")
    key = _cached(schema, purpose, row.version)
    if key is None:
        key = _unwrap(row)
    _remember(schema, purpose, row.version, key, active=True)
    return row.version, key


def key_for_version(schema: str, purpose: str, version: int) -> bytes:
    key = _cached(schema, purpose, version)
    if key is not None:
        return key
    row = WrappedKey.objects.filter(schema_name=schema, purpose=purpose, version=version).first()
    if row is None:
        raise KeyNotFound(f"no {purpose} key v{version} for {schema}")
    key = _unwrap(row)
    _remember(schema, purpose, version, key)
    return key


def forget_cached(schema: str | None = None) -> None:
    with _lock:
        for cache_key in [k for k in _cache if schema is None or k[0] == schema]:
            del _cache[cache_key]
        for active_key_ in [k for k in _active if schema is None or k[0] == schema]:
            del _active[active_key_]


def rotate(schema: str, purpose: str) -> WrappedKey:
    """Add a new active version; the previous one stays for decryption."""
    with transaction.atomic():
        current = (
            WrappedKey.objects.select_for_update()
            .filter(schema_name=schema, purpose=purpose, state=WrappedKey.State.ACTIVE)
            .first()
        )
        latest = (
            WrappedKey.objects.filter(schema_name=schema, purpose=purpose)
            .order_by("-version")
            .first()
        )
        if current:
            current.state, current.retired_at = WrappedKey.State.RETIRED, timezone.now()
            current.save(update_fields=["state", "retired_at"])
        with _lock:
            _active.pop((schema, purpose), None)
        return _create(schema, purpose, (latest.version + 1) if latest else 1)


def rewrap_all() -> int:
    """After the KEK rotated (vault provider): re-wrap every live key with its newest version."""
    kek = provider()
    count = 0
    for row in WrappedKey.objects.exclude(state=WrappedKey.State.DESTROYED).filter(
        provider=kek.name
    ):
        row.wrapped = kek.rewrap(
            row.wrapped, context=context_for(row.schema_name, row.purpose, row.version)
        )
        row.save(update_fields=["wrapped"])
        count += 1
    return count


def destroy(schema: str) -> int:
    """Crypto-shredding: erase every wrapped key of ``schema`` (irreversible)."""
    destroyed = (
        WrappedKey.objects.filter(schema_name=schema)
        .exclude(state=WrappedKey.State.DESTROYED)
        .update(wrapped="", state=WrappedKey.State.DESTROYED, destroyed_at=timezone.now())
    )
    forget_cached(schema)
    return destroyed
