"""Forwarding audit events to SIEM sinks: syslog (RFC 5424 over TCP/TLS) or JSON over HTTPS.

Delivery is driven by a cursor per sink: the sequence number of the last event
delivered. A run claims the sink with a lease (a conditional UPDATE), sends a
batch of events after the cursor in order, and moves the cursor only once the
peer confirmed it (syslog: a clean end of stream; HTTPS: a 2xx per request),
so a run that stops (worker restart) leaves the cursor exactly after the last
confirmed event; the next run continues from there. Each syslog message carries the
event's sequence number (MSGID and structured data) so a SIEM can tell events
apart even after a crash between send and cursor update.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from audit.export import _event_dict
from audit.models import AuditEvent, AuditSink
from parley import outbound

logger = logging.getLogger(__name__)

LEASE_SECONDS = 120
SYSLOG_FACILITY_AUTHPRIV = 10
_SEVERITY = {"allowed": 6, "denied": 4, "failed": 3}  # info, warning, error


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_frame(event: dict, *, hostname: str, schema: str) -> bytes:
    """One RFC 5424 message with RFC 6587 octet-counting framing."""
    pri = SYSLOG_FACILITY_AUTHPRIV * 8 + _SEVERITY.get(event["outcome"], 6)
    msgid = event["action"][:32]
    sd = (
        f'[parley@32473 seq="{event["seq"]}" schema="{_sd_escape(schema)}" '
        f'outcome="{event["outcome"]}" hash="{event["hash"]}"]'
    )
    body = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    message = f"<{pri}>1 {event['occurred_at']} {hostname[:255]} parley - {msgid} {sd} \ufeff{body}".encode()
    return f"{len(message)} ".encode() + message


def claim(sink_id: int) -> str | None:
    token = uuid.uuid4().hex
    now = timezone.now()
    claimed = (
        AuditSink.objects.filter(pk=sink_id, enabled=True)
        .exclude(lease_until__gt=now)
        .update(lease_token=token, lease_until=now + timedelta(seconds=LEASE_SECONDS))
    )
    return token if claimed == 1 else None


def release(sink_id: int, token: str, *, error: str = "") -> None:
    AuditSink.objects.filter(pk=sink_id, lease_token=token).update(
        lease_token="", lease_until=None, last_error=error[:300]
    )


def _advance(sink_id: int, token: str, seq: int, delivered: int) -> None:
    moved = AuditSink.objects.filter(pk=sink_id, lease_token=token, cursor_seq__lt=seq).update(
        cursor_seq=seq,
        delivered_count=F("delivered_count") + delivered,
        last_delivery_at=timezone.now(),
        lease_until=timezone.now() + timedelta(seconds=LEASE_SECONDS),
    )
    if moved != 1:
        raise RuntimeError("lost the lease on the sink; another run took over")


def _open_syslog(sink: AuditSink):
    # Connects to the address it vetted (no second DNS lookup to rebind); TLS below
    # still names and verifies the sink's host name.
    raw = outbound.open_connection(sink.host, sink.port, timeout=10)
    if not sink.use_tls:
        return raw
    context = ssl.create_default_context(cadata=sink.ca_pem or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context.wrap_socket(raw, server_hostname=sink.host)


def _confirm_close(sock) -> None:
    """End the stream and wait until the peer has read all of it and closed.

    Syslog over TCP has no acknowledgement. Closing at once after sending can
    lose the tail: with unread data (e.g. TLS session tickets) in our receive
    buffer the kernel answers with a reset, and the peer may drop what it has
    not read yet. So: TLS close_notify, half-close, then read until the peer's
    end of stream. Only a clean end confirms delivery; a reset raises.
    """
    if isinstance(sock, ssl.SSLSocket):
        try:
            sock = sock.unwrap()
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return  # the peer read our close_notify and closed: confirmed
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(4096):
        pass


def forward(sink_id: int, *, batch: int | None = None) -> dict:
    """Send up to ``batch`` events after the sink's cursor; return what happened."""
    batch = batch or settings.PARLEY_AUDIT_FORWARD_BATCH
    token = claim(sink_id)
    if token is None:
        return {"sink": sink_id, "skipped": "claimed by another run or disabled"}
    sink = AuditSink.objects.get(pk=sink_id)
    events = list(AuditEvent.objects.filter(seq__gt=sink.cursor_seq).order_by("seq")[:batch])
    schema = connection.schema_name
    sent = 0
    try:
        if sink.kind == AuditSink.Kind.SYSLOG and events:
            hostname = socket.gethostname()
            sock = _open_syslog(sink)
            try:
                for event in events:
                    sock.sendall(syslog_frame(_event_dict(event), hostname=hostname, schema=schema))
                _confirm_close(sock)
            finally:
                sock.close()
            # Only now: the peer has read everything up to our end of stream.
            _advance(sink_id, token, events[-1].seq, len(events))
            sent = len(events)
        elif sink.kind == AuditSink.Kind.HTTPS:
            for start in range(0, len(events), 100):
                chunk = events[start : start + 100]
                outbound.request(
                    "POST",
                    sink.url,
                    json_body={"schema": schema, "events": [_event_dict(e) for e in chunk]},
                    ca_pem=sink.ca_pem or None,
                    purpose="audit-siem",
                    retries=2,
                )
                _advance(sink_id, token, chunk[-1].seq, len(chunk))
                sent += len(chunk)
    except (OSError, outbound.OutboundError, RuntimeError) as exc:
        release(sink_id, token, error=f"{type(exc).__name__}: {exc}")
        logger.warning(
            "audit sink %s: delivery stopped after %s events: %s", sink_id, sent, type(exc).__name__
        )
        raise
    release(sink_id, token)
    last = events[sent - 1].seq if sent else sink.cursor_seq
    remaining = AuditEvent.objects.filter(seq__gt=last).exists()
    return {"sink": sink_id, "sent": sent, "more": remaining}
