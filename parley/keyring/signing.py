"""Per-tenant token-signing keys: wrapped, versioned, rotatable, named by ``kid``.

A tenant's API tokens are signed (HMAC-SHA256) with a 256-bit key of purpose
``token`` from the keyring: created at random, stored only wrapped by the KEK
like every DEK, one active version per tenant. Tokens name the version that
signed them in their ``kid`` header (``v<version>``); nothing is derived from
a process-wide secret, so knowing ``SECRET_KEY`` forges nothing.

Rotation adds a version and retires the previous one. A retired version still
verifies for ``PARLEY_TOKEN_KEY_GRACE_SECONDS`` after its retirement (default:
the refresh-token lifetime, so a planned rotation signs nobody out) and never
after; ``immediately=True`` destroys it at once (a key believed leaked).

The hot path stays in memory: each process keeps a table per schema of the
unwrapped keys and the time until which each is accepted, re-read from the
database every ``_TABLE_SECONDS`` seconds, and at once (at most once a second)
when a token names a version the table does not know yet. A rotation in
another process is therefore seen within ``_TABLE_SECONDS``; a version
destroyed at once is also marked in Redis (:func:`destroyed_key`), which the
per-request round trip of :mod:`accounts.tokens` reads, so its tokens stop at
once in every process.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from parley.keyring import keys
from parley.models import WrappedKey

PURPOSE = WrappedKey.Purpose.TOKEN
_TABLE_SECONDS = 10.0  # how stale a process's view of the key versions may get
_RELOAD_AT_MOST_EVERY = 1.0  # unknown kids: one database read per schema per second at most
_KID = re.compile(r"v([1-9][0-9]{0,8})")
# How long the "destroyed at once" mark stays in Redis: far longer than any
# process keeps its table (``_TABLE_SECONDS``).
_DESTROYED_MARK_SECONDS = 3600


def kid_for(version: int) -> str:
    return f"v{version}"


def version_of(kid) -> int | None:
    """The key version a ``kid`` header names, or None when it is not one of ours."""
    if not isinstance(kid, str):
        return None
    match = _KID.fullmatch(kid)
    return int(match.group(1)) if match else None


@dataclass
class _Table:
    loaded_at: float
    active: int | None
    # version -> (key, accepted until as unix time; None while active)
    versions: dict[int, tuple[bytes, float | None]] = field(default_factory=dict)


_tables: dict[str, _Table] = {}
_unwrapped: dict[tuple[str, int], bytes] = {}  # keys never change for a version
_lock = threading.Lock()


def grace_seconds() -> int:
    return settings.PARLEY_TOKEN_KEY_GRACE_SECONDS


def _load(schema: str) -> _Table:
    rows = WrappedKey.objects.filter(schema_name=schema, purpose=PURPOSE).exclude(
        state=WrappedKey.State.DESTROYED
    )
    grace = grace_seconds()
    now = time.time()
    table = _Table(loaded_at=time.monotonic(), active=None)
    for row in rows:
        if row.state == WrappedKey.State.ACTIVE:
            until = None
            table.active = row.version
        else:
            retired = row.retired_at.timestamp() if row.retired_at else 0.0
            until = retired + grace
            if until <= now:
                continue  # past its grace window: never unwrapped again
        key = _unwrapped.get((schema, row.version))
        if key is None:
            key = keys._unwrap(row)
        table.versions[row.version] = (key, until)
    # Only what is committed may be remembered: a key created inside a
    # transaction that rolls back must not outlive it.
    if not connection.in_atomic_block:
        with _lock:
            for version, (key, _) in table.versions.items():
                _unwrapped[(schema, version)] = key
            _tables[schema] = table
    return table


def _table(schema: str, *, want: int | None = None) -> _Table:
    table = _tables.get(schema)
    age = None if table is None else time.monotonic() - table.loaded_at
    if table is None or age > _TABLE_SECONDS:
        return _load(schema)
    if want is not None and want not in table.versions and age > _RELOAD_AT_MOST_EVERY:
        return _load(schema)
    return table


def signing_key(schema: str) -> tuple[str, bytes]:
    """The ``kid`` and key that sign new tokens of ``schema`` (created on first use)."""
    table = _table(schema)
    if table.active is None:
        # A tenant older than token keys that `parley_migrate` has not reached yet.
        keys.ensure_keys(schema)
        table = _load(schema)
        if table.active is None:
            raise keys.KeyNotFound(f"no active token-signing key for {schema}")
    return kid_for(table.active), table.versions[table.active][0]


def verification_key(schema: str, kid) -> bytes | None:
    """The key for a token of ``schema`` signed under ``kid``, or None when that
    version is unknown, destroyed or past its grace window."""
    version = version_of(kid)
    if version is None:
        return None
    table = _table(schema, want=version)
    entry = table.versions.get(version)
    if entry is None:
        return None
    key, until = entry
    if until is not None and time.time() >= until:
        return None
    return key


def destroyed_key(kid: str) -> str:
    """Cache key (tenant-prefixed) set when a version is destroyed at once: every
    process refuses its tokens on the next request, before its table is re-read."""
    return f"jwt-kid-destroyed:{kid}"


def forget(schema: str | None = None) -> None:
    """Drop this process's cached tables (after a rotation here, in tests)."""
    with _lock:
        for name in [s for s in _tables if schema is None or s == schema]:
            del _tables[name]
        for cache_key in [k for k in _unwrapped if schema is None or k[0] == schema]:
            del _unwrapped[cache_key]


@dataclass(frozen=True)
class Rotation:
    version: int
    previous: int | None
    previous_valid_until: datetime | None  # None: destroyed at once, or there was none


def rotate(schema: str, *, immediately: bool = False) -> Rotation:
    """Add a new active token-signing key for ``schema`` (caller audits).

    The previous version keeps verifying through the grace window, unless
    ``immediately``: then it is destroyed and every token it signed is refused.
    Versions whose grace window is over are destroyed on the way.
    """
    with transaction.atomic():
        previous = (
            WrappedKey.objects.select_for_update()
            .filter(schema_name=schema, purpose=PURPOSE, state=WrappedKey.State.ACTIVE)
            .first()
        )
        new = keys.rotate(schema, PURPOSE)
        now = timezone.now()
        retired = WrappedKey.objects.filter(
            schema_name=schema, purpose=PURPOSE, state=WrappedKey.State.RETIRED
        )
        if not immediately:
            retired = retired.filter(retired_at__lte=now - timedelta(seconds=grace_seconds()))
        destroyed = [kid_for(v) for v in retired.values_list("version", flat=True)]
        retired.update(wrapped="", state=WrappedKey.State.DESTROYED, destroyed_at=now)
        if immediately and destroyed:

            def mark_destroyed() -> None:
                with schema_context(schema):  # cache keys carry the tenant's schema
                    cache.set_many(
                        {destroyed_key(kid): 1 for kid in destroyed}, _DESTROYED_MARK_SECONDS
                    )

            transaction.on_commit(mark_destroyed)
        valid_until = None
        if previous is not None and not immediately:
            valid_until = now + timedelta(seconds=grace_seconds())
        transaction.on_commit(lambda: forget(schema))
    forget(schema)
    return Rotation(
        version=new.version,
        previous=previous.version if previous else None,
        previous_valid_until=valid_until,
    )
