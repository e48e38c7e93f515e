"""Every encrypted column, so key rotation can find and re-encrypt them.

Each app that adds an encrypted column registers it here: connector secrets,
contact PII, message bodies, TOTP keys. New columns go at the end (a running
re-encryption job records its place as an index into this tuple).
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
    EncryptedColumn(
        table="conversations_contact", column="name", db_column="name_ct", purpose="data"
    ),
    EncryptedColumn(
        table="conversations_contact", column="phone", db_column="phone_ct", purpose="data"
    ),
    EncryptedColumn(
        table="conversations_contact", column="email", db_column="email_ct", purpose="data"
    ),
    EncryptedColumn(
        table="conversations_message", column="body", db_column="body_ct", purpose="data"
    ),
    EncryptedColumn(
        table="accounts_totpdevice", column="key", db_column="key_ct", purpose="credential"
    ),
    EncryptedColumn(
        table="bots_flowrun", column="variables", db_column="variables_ct", purpose="data"
    ),
)


def for_purpose(purpose: str) -> list[EncryptedColumn]:
    return [c for c in COLUMNS if c.purpose == purpose]
