"""AES-256-GCM field encryption bound to tenant, table, column and row.

Ciphertext layout: ``0x01 | key version (4 bytes, big-endian) | nonce (12) |
ciphertext+tag``. The associated data is ``schema|table|column|pk``: the same
bytes copied to another row, column or tenant fail authentication, loudly.
Blind indexes are HMAC-SHA256 under the tenant's blind-index key, so equality
lookups never decrypt anything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import connection

from parley.keyring import keys
from parley.keyring.providers import KeyringError

FORMAT = 1


class DecryptionError(KeyringError):
    """A ciphertext does not belong where it was read, or was altered."""


def _aad(schema: str, table: str, column: str, pk: int | str) -> bytes:
    return f"{schema}|{table}|{column}|{pk}".encode()


_aead_cache: dict[bytes, AESGCM] = {}


def _aead(key: bytes) -> AESGCM:
    aead = _aead_cache.get(key)
    if aead is None:
        if len(_aead_cache) > 256:
            _aead_cache.clear()
        aead = _aead_cache[key] = AESGCM(key)
    return aead


def reserve_ids(table: str, count: int = 1) -> list[int]:
    """Take ``count`` ids from ``table``'s sequence in the current schema.

    The associated data names the row, so a row's id must exist before its
    first ciphertext does: models with encrypted columns reserve it, then insert.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def encrypt(
    plaintext: str | bytes,
    *,
    schema: str,
    table: str,
    column: str,
    pk: int | str,
    purpose: str = "data",
) -> bytes:
    if pk in (None, ""):
        raise KeyringError("encrypting needs the row's primary key (allocate it before saving)")
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    version, key = keys.active_key(schema, purpose)
    nonce = os.urandom(12)
    sealed = _aead(key).encrypt(nonce, data, _aad(schema, table, column, pk))
    return bytes([FORMAT]) + struct.pack(">I", version) + nonce + sealed


def key_version_of(ciphertext: bytes) -> int:
    return struct.unpack(">I", bytes(ciphertext[1:5]))[0]


def decrypt(
    ciphertext: bytes, *, schema: str, table: str, column: str, pk: int | str, purpose: str = "data"
) -> bytes:
    if not isinstance(ciphertext, bytes):
        ciphertext = bytes(ciphertext)
    if len(ciphertext) < 1 + 4 + 12 + 16 or ciphertext[0] != FORMAT:
        raise DecryptionError(f"{schema}.{table}.{column}#{pk}: not a Parley ciphertext")
    version = int.from_bytes(ciphertext[1:5], "big")
    key = keys.key_for_version(schema, purpose, version)
    try:
        return AESGCM(key).decrypt(
            ciphertext[5:17], ciphertext[17:], _aad(schema, table, column, pk)
        )
    except InvalidTag:
        raise DecryptionError(
            f"{schema}.{table}.{column}#{pk}: the ciphertext does not belong to this tenant, table, column and row, or was altered"
        ) from None


def blind_index(value: str, *, schema: str, field: str) -> str:
    """HMAC of a normalised value under the tenant's blind-index key (hex, 32 chars)."""
    _, key = keys.active_key(schema, "blind")
    message = f"{field}|{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def normalise_phone(value: str) -> str:
    digits = "".join(ch for ch in value if ch.isdigit())
    return ("+" + digits) if digits else ""


def normalise_email(value: str) -> str:
    return value.strip().lower()
