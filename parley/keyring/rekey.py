"""Key rotation with background re-encryption (resumable, progress recorded)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from parley.keyring import fields, keys, registry
from parley.models import RekeyJob, WrappedKey


def rotate_and_schedule(
    *, schema: str, purposes: tuple[str, ...] = ("data", "credential")
) -> list[RekeyJob]:
    """Add a new active key version per purpose and a re-encryption job for each."""
    jobs = []
    with transaction.atomic():
        for purpose in purposes:
            new = keys.rotate(schema, purpose)
            total = _count_rows(schema, purpose)
            jobs.append(
                RekeyJob.objects.create(
                    schema_name=schema,
                    purpose=purpose,
                    target_version=new.version,
                    rows_total=total,
                )
            )
    return jobs


def _count_rows(schema: str, purpose: str) -> int:
    total = 0
    with connection.cursor() as cursor:
        for col in registry.for_purpose(purpose):
            cursor.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(col.table)
                )
            )
            total += cursor.fetchone()[0]
    return total


def run(job_id: int, *, batch: int | None = None, max_batches: int | None = None) -> RekeyJob:
    """Re-encrypt what the job still has to do; returns the job (done or not)."""
    batch = batch or settings.PARLEY_REKEY_BATCH
    job = RekeyJob.objects.get(pk=job_id)
    if job.state == RekeyJob.State.DONE:
        return job
    RekeyJob.objects.filter(pk=job.pk).update(
        state=RekeyJob.State.RUNNING, heartbeat_at=timezone.now()
    )
    columns = registry.for_purpose(job.purpose)
    batches = 0
    while job.column_index < len(columns):
        col = columns[job.column_index]
        if job.stop_pk == 0:
            job.stop_pk = _max_pk(job.schema_name, col) or -1
        done_in_batch, last = _rekey_batch(job, col, batch)
        if last is None:  # column finished
            job.column_index += 1
            job.last_pk = job.stop_pk = 0
        else:
            job.last_pk = last
        job.rows_done += done_in_batch
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["column_index", "last_pk", "stop_pk", "rows_done", "heartbeat_at"])
        batches += 1
        if max_batches is not None and batches >= max_batches and job.column_index < len(columns):
            return job
    job.state, job.finished_at = RekeyJob.State.DONE, timezone.now()
    job.rows_done = max(job.rows_done, job.rows_total)
    job.save(update_fields=["state", "finished_at", "rows_done"])
    _retire_unused(job.schema_name, job.purpose, job.target_version)
    return job


def _max_pk(schema: str, col: registry.EncryptedColumn) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT coalesce(max(id), 0) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(col.table)
            )
        )
        return cursor.fetchone()[0]


def _rekey_batch(
    job: RekeyJob, col: registry.EncryptedColumn, batch: int
) -> tuple[int, int | None]:
    table = sql.SQL("{}.{}").format(sql.Identifier(job.schema_name), sql.Identifier(col.table))
    ct = sql.Identifier(col.db_column)
    with transaction.atomic(), connection.cursor() as cursor:
        # Lock the batch: a concurrent write to one of these rows waits, then
        # writes with the new active key anyway.
        cursor.execute(
            sql.SQL(
                "SELECT id, {} FROM {} WHERE id > %s AND id <= %s ORDER BY id LIMIT %s FOR UPDATE"
            ).format(ct, table),
            [job.last_pk, job.stop_pk, batch],
        )
        rows = cursor.fetchall()
        if not rows:
            return 0, None
        where = {
            "schema": job.schema_name,
            "table": col.table,
            "column": col.column,
            "purpose": col.purpose,
        }
        for pk, ciphertext in rows:
            if ciphertext is None or fields.key_version_of(ciphertext) >= job.target_version:
                continue
            plaintext = fields.decrypt(ciphertext, pk=pk, **where)
            fresh = fields.encrypt(plaintext, pk=pk, **where)
            cursor.execute(
                sql.SQL("UPDATE {} SET {} = %s WHERE id = %s").format(table, ct), [fresh, pk]
            )
        return len(rows), rows[-1][0]


def rows_on_older_keys(schema: str, purpose: str, version: int) -> int:
    """Rows whose ciphertext names a key version below ``version`` (bytes 2-5)."""
    total = 0
    with connection.cursor() as cursor:
        for col in registry.for_purpose(purpose):
            ct = sql.Identifier(col.db_column)
            cursor.execute(
                sql.SQL(
                    "SELECT count(*) FROM {}.{} WHERE {} IS NOT NULL AND "
                    "(get_byte({}, 1)::bigint << 24 | get_byte({}, 2) << 16 | get_byte({}, 3) << 8 | get_byte({}, 4)) < %s"
                ).format(sql.Identifier(schema), sql.Identifier(col.table), ct, ct, ct, ct, ct),
                [version],
            )
            total += cursor.fetchone()[0]
    return total


def _retire_unused(schema: str, purpose: str, version: int) -> None:
    """Once no row uses an older key version, it is no longer needed: destroy it.

    A writer that encrypted with the old key just before the rotation committed
    can land a row after the job passed by: then the old key stays (retired)
    and the next resume pass re-encrypts that row first.
    """
    if rows_on_older_keys(schema, purpose, version):
        RekeyJob.objects.create(schema_name=schema, purpose=purpose, target_version=version)
        return
    WrappedKey.objects.filter(
        schema_name=schema, purpose=purpose, state=WrappedKey.State.RETIRED
    ).update(wrapped="", state=WrappedKey.State.DESTROYED, destroyed_at=timezone.now())
    keys.forget_cached(schema)
