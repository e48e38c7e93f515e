"""Walking a chain: recompute every hash, check every link, compare anchors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db import connection
from psycopg import sql

from audit.hashing import EXPORTED_FIELDS, content_hash, link_hash
from audit.models import GENESIS_HASH

_COLUMNS = list(EXPORTED_FIELDS)
_BATCH = 20_000


@dataclass
class ChainReport:
    schema: str
    count: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    broken_seq: int | None = None
    reason: str = ""
    anchors_checked: int = 0
    unsealed: int = 0
    unsealed_stale: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.broken_seq is None

    def summary(self) -> str:
        if self.ok:
            text = (
                f"{self.schema}: intact, {self.count} events, head #{self.head_seq} {self.head_hash[:16]}…, "
                f"{self.anchors_checked} anchor(s) matched"
            )
            if self.unsealed:
                text += f"; {self.unsealed} event(s) not chained yet"
            if self.unsealed_stale:
                text += f" ({self.unsealed_stale} for over {UNSEALED_GRACE_SECONDS // 60} min: is beat running?)"
            return text
        return f"{self.schema}: BROKEN at #{self.broken_seq}: {self.reason}"


def _rows(schema: str):
    query = sql.SQL("SELECT {} FROM {}.audit_auditevent WHERE seq IS NOT NULL ORDER BY seq").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS), sql.Identifier(schema)
    )
    with connection.chunked_cursor() as cursor:
        cursor.execute(query)
        while True:
            batch = cursor.fetchmany(_BATCH)
            if not batch:
                return
            yield from batch


def verify_chain(schema: str) -> ChainReport:
    """Report the first sequence number at which the chain stops being trustworthy."""
    report = ChainReport(schema=schema)
    expected_seq, prev_hash = 1, GENESIS_HASH
    index_hash = len(_COLUMNS) - 1
    index_prev = _COLUMNS.index("prev_hash")
    for row in _rows(schema):
        seq = row[0]
        if seq != expected_seq:
            report.broken_seq = expected_seq
            report.reason = f"event #{expected_seq} is missing (the next stored event is #{seq})"
            return report
        if row[index_prev] != prev_hash:
            report.broken_seq = seq
            report.reason = f"event #{seq} does not link to event #{seq - 1} (prev_hash differs)"
            return report
        fields = dict(zip(_COLUMNS, row, strict=True))
        if isinstance(fields["details"], str):
            fields["details"] = json.loads(fields["details"])
        digest = content_hash(fields)
        if (
            digest != fields["content_hash"]
            or link_hash(seq, fields["occurred_at"], prev_hash, digest) != row[index_hash]
        ):
            report.broken_seq = seq
            report.reason = f"event #{seq} was altered (its content no longer matches its hash)"
            return report
        prev_hash = row[index_hash]
        report.count += 1
        report.head_seq, report.head_hash = seq, prev_hash
        expected_seq += 1
    _check_anchors(report)
    _count_unsealed(report)
    return report


UNSEALED_GRACE_SECONDS = 600


def _count_unsealed(report: ChainReport) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE occurred_at < now() - make_interval(secs => %s)) "
                "FROM {}.audit_auditevent WHERE seq IS NULL"
            ).format(sql.Identifier(report.schema)),
            [UNSEALED_GRACE_SECONDS],
        )
        report.unsealed, report.unsealed_stale = cursor.fetchone()


def _check_anchors(report: ChainReport) -> None:
    # Layer debt (pyproject ignore_imports): AuditAnchor lives in tenants, above audit,
    # which imports audit at start-up; read at call time until the model moves to audit.
    from tenants.models import AuditAnchor  # noqa: PLC0415

    anchors = AuditAnchor.objects.filter(schema_name=report.schema).order_by("-seq")
    latest = anchors.first()
    if latest is None:
        return
    if latest.seq > report.head_seq:
        report.broken_seq = report.head_seq + 1
        report.reason = (
            f"the chain ends at #{report.head_seq} but event #{latest.seq} was anchored at "
            f"{latest.anchored_at:%Y-%m-%d %H:%M:%S} UTC: events from #{report.head_seq + 1} on were removed"
        )
        return
    with connection.cursor() as cursor:
        for anchor in anchors[:20]:
            cursor.execute(
                sql.SQL("SELECT hash FROM {}.audit_auditevent WHERE seq = %s").format(
                    sql.Identifier(report.schema)
                ),
                [anchor.seq],
            )
            stored = cursor.fetchone()
            if stored is None or stored[0] != anchor.hash:
                report.broken_seq = anchor.seq
                report.reason = (
                    f"event #{anchor.seq} differs from its anchored hash: the chain was rewritten"
                )
                return
            report.anchors_checked += 1
