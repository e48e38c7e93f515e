"""Benchmark: field encryption cost. Prints one JSON object.

* encrypt+decrypt operations per second for a 1 KB field (AES-256-GCM, the
  tenant's DEK cached in process as in a running worker);
* reading 1,000 encrypted messages (fetch + decrypt each) against 1,000
  plaintext ones (fetch only), median of repeated reads, with a raw cursor
  (the worst case: nothing else costs anything) and through the ORM (model
  instances, as pages and the API read). Target: 1.5x or less.

Runs in its own database (``bench_parley_crypto``). Until the inbox issue adds
the Message model, the rows live in a benchmark table with the same shape
(id, body text / body ciphertext) in a real tenant schema with real keys.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import migrate_and_create, prepare, use_role  # noqa: E402

BENCH_DB = "bench_parley_crypto"


def _medians(first, second, repeats: int) -> tuple[float, float]:
    a, b = [], []
    for _ in range(repeats):
        for func, bucket in ((first, a), (second, b)):
            t0 = time.perf_counter()
            func()
            bucket.append(time.perf_counter() - t0)
    return statistics.median(a) * 1000, statistics.median(b) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops-seconds", type=float, default=3.0)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    prepare(BENCH_DB)
    import django

    django.setup()
    from django.db import connection

    from parley.keyring import fields, keys

    migrate_and_create("crypto")
    schema = "t_crypto"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {schema}.bench_message (id bigserial PRIMARY KEY, body text, body_ct bytea)"  # noqa: S608
        )
    connection.close()
    use_role("app")
    keys.forget_cached()
    body = ("Hello, I would like to know where my order is. " * 25)[:1024]
    where = {"schema": schema, "table": "bench_message", "column": "body"}

    # 1. encrypt + decrypt of a 1 KB field
    fields.encrypt(body, pk=1, **where)  # warm the key cache
    count, deadline = 0, time.perf_counter() + args.ops_seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        ciphertext = fields.encrypt(body, pk=count, **where)
        fields.decrypt(ciphertext, pk=count, **where)
        count += 1
    ops = count / (time.perf_counter() - started)

    # 2. 1,000 messages: plaintext vs encrypted
    with connection.cursor() as cursor:
        rows = []
        for i in range(1, args.rows + 1):
            text = f"{i}: {body}"[:1024]
            rows.append((i, text, fields.encrypt(text, pk=i, **where)))
        cursor.executemany(
            f"INSERT INTO {schema}.bench_message (id, body, body_ct) VALUES (%s, %s, %s)",  # noqa: S608
            rows,
        )

    def read_plain() -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id, body FROM {schema}.bench_message ORDER BY id")  # noqa: S608
            return sum(len(b) for _, b in cursor.fetchall())

    def read_encrypted() -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id, body_ct FROM {schema}.bench_message ORDER BY id")  # noqa: S608
            return sum(len(fields.decrypt(ct, pk=pk, **where)) for pk, ct in cursor.fetchall())

    assert read_plain() == read_encrypted()
    plain_ms, enc_ms = _medians(read_plain, read_encrypted, args.repeats)

    # 3. The same through the ORM, as pages and the API read rows: model
    #    instances of encrypted connector credentials, without and with
    #    decrypting each one.
    from django_tenants.utils import schema_context

    from connectors.models import Credential
    from connectors.services import COLUMN, PURPOSE, TABLE

    with schema_context(schema):
        for i in range(args.rows):
            credential = Credential(name=f"c{i}", kind="api_key", connector="bench")
            credential.allocate_pk()
            text = f"{i}: {body}"[:1024]
            credential.secret_ct = fields.encrypt(
                text, schema=schema, table=TABLE, column=COLUMN, pk=credential.pk, purpose=PURPOSE
            )
            credential.last4 = text[-4:]
            from django.utils import timezone

            credential.rotated_at = credential.rotation_due_at = timezone.now()
            credential.save(force_insert=True)

        def orm_plain() -> int:
            return sum(len(bytes(c.secret_ct)) for c in Credential.objects.all())

        def orm_decrypt() -> int:
            return sum(
                len(
                    fields.decrypt(
                        c.secret_ct,
                        schema=schema,
                        table=TABLE,
                        column=COLUMN,
                        pk=c.pk,
                        purpose=PURPOSE,
                    )
                )
                for c in Credential.objects.all()
            )

        orm_plain_ms, orm_enc_ms = _medians(orm_plain, orm_decrypt, args.repeats)
    print(
        json.dumps(
            {
                "benchmark": "crypto",
                "field_bytes": len(body),
                "encrypt_decrypt_ops_per_second": round(ops),
                "read_rows": args.rows,
                "read_plaintext_ms_median": round(plain_ms, 2),
                "read_encrypted_ms_median": round(enc_ms, 2),
                "encrypted_over_plaintext": round(enc_ms / plain_ms, 2),
                "orm_read_without_decrypt_ms_median": round(orm_plain_ms, 2),
                "orm_read_with_decrypt_ms_median": round(orm_enc_ms, 2),
                "orm_encrypted_over_plaintext": round(orm_enc_ms / orm_plain_ms, 2),
                "target_ratio": 1.5,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
