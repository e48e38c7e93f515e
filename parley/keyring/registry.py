"""Every encrypted column, so key rotation can find and re-encrypt them.

Each app that adds an encrypted column registers it here (connectors now;
contacts and messages with the inbox issue).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncryptedColumn:
    table: str
    column: str  # the logical column named in the associated data
    db_column: str  # where the ciphertext is stored
    purpose: str


COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn(
        table="connectors_credential", column="secret", db_column="secret_ct", purpose="credential"
    ),
)


def for_purpose(purpose: str) -> list[EncryptedColumn]:
    return [c for c in COLUMNS if c.purpose == purpose]
