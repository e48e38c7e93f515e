"""SIEM forwarding to real sockets: syslog over TCP and TLS, JSON over HTTPS,
exactly once per event, across a worker restart."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from audit.forwarding import forward
from audit.models import AuditEvent, AuditSink
from audit.services import record, seal
from audit.tasks import forward_sink
from tenants.models import Tenant
from tests import support
from tests.audit.receivers import HttpsJsonReceiver, SyslogReceiver, make_tls_files


@pytest.mark.django_db
def test_it_forwards_every_event_as_rfc5424_over_tls(acme, tmp_path):
    cert, key, ca_pem = make_tls_files(tmp_path)
    receiver = SyslogReceiver(tls=(cert, key))
    try:
        with tenant_context(acme):
            record("auth.login.failed", outcome="failed", details={"username": "ghost"})
            seal()  # the test transaction never commits, so seal here
            sink = AuditSink.objects.create(
                name="siem", kind="syslog", host="localhost", port=receiver.port, ca_pem=ca_pem
            )
            result = forward(sink.pk)
            expected = list(
                AuditEvent.objects.filter(seq__isnull=False)
                .order_by("seq")
                .values_list("seq", flat=True)
            )
            sink.refresh_from_db()
        deadline = time.monotonic() + 5
        while len(receiver.seqs()) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.errors == []
        assert result["sent"] == len(expected), result
        assert receiver.seqs() == expected
        assert sink.cursor_seq == expected[-1] and sink.delivered_count == len(expected)
        failed = next(m for m in receiver.messages if m["msgid"] == "auth.login.failed")
        assert failed["pri"] == 10 * 8 + 3  # authpriv.error
        assert (
            f'seq="{failed["event"]["seq"]}"' in failed["sd"] and 'schema="t_acme"' in failed["sd"]
        )
        # A second run sends nothing new.
        with tenant_context(acme):
            assert forward(sink.pk)["sent"] == 0
    finally:
        receiver.close()


@pytest.mark.django_db
def test_it_refuses_a_sink_with_an_untrusted_certificate(acme, tmp_path):
    cert, key, _ = make_tls_files(tmp_path)
    receiver = SyslogReceiver(tls=(cert, key))
    try:
        with tenant_context(acme):
            sink = AuditSink.objects.create(
                name="siem", kind="syslog", host="localhost", port=receiver.port
            )
            with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
                forward(sink.pk)
            sink.refresh_from_db()
            assert sink.cursor_seq == 0 and "SSLCertVerificationError" in sink.last_error
    finally:
        receiver.close()


@pytest.mark.django_db
def test_it_posts_json_batches_over_https(acme, tmp_path):
    cert, key, ca_pem = make_tls_files(tmp_path)
    receiver = HttpsJsonReceiver(tls=(cert, key))
    try:
        with tenant_context(acme):
            record("user.updated")
            seal()
            sink = AuditSink.objects.create(
                name="https",
                kind="https",
                url=f"https://localhost:{receiver.port}/ingest",
                ca_pem=ca_pem,
            )
            forward(sink.pk)
            expected = list(
                AuditEvent.objects.filter(seq__isnull=False)
                .order_by("seq")
                .values_list("seq", flat=True)
            )
        received = [e["seq"] for batch in receiver.batches for e in batch["body"]["events"]]
        assert received == expected
        assert receiver.batches[0]["content_type"] == "application/json"
        assert receiver.batches[0]["body"]["schema"] == "t_acme"
    finally:
        receiver.close()


@pytest.mark.django_db
def test_the_sink_form_labels_fields_for_people_and_marks_their_kind(acme):
    page = support.signed_in(acme, "admin@acme.test").get("/audit/sinks/").content.decode()
    for label in (
        "Syslog host",
        "Syslog TCP port",
        "Use TLS (recommended)",
        "HTTPS URL",
        "Private CA certificate (PEM, optional)",
    ):
        assert f">{label}</label>" in page, label
    assert ">Url</label>" not in page and ">Ca pem</label>" not in page
    assert 'name="host" maxlength="253" data-sink-kind="syslog"' in page
    assert 'data-sink-kind="https"' in page and "js/sinks.js" in page


@pytest.mark.django_db
def test_it_validates_sinks_in_the_page(acme):

    client = support.signed_in(acme, "admin@acme.test")
    bad = client.post("/audit/sinks/", {"name": "x", "kind": "syslog", "port": "99999"})
    assert bad.status_code == 400 and "needs a host" in bad.content.decode()
    bad = client.post(
        "/audit/sinks/", {"name": "x", "kind": "https", "url": "http://plain.example"}
    )
    assert "needs an https:// URL" in bad.content.decode()
    ok = client.post(
        "/audit/sinks/",
        {
            "name": "siem",
            "kind": "syslog",
            "host": "siem.example",
            "port": "6514",
            "use_tls": "on",
            "enabled": "on",
        },
    )
    assert ok.status_code == 302
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="audit.sink.created").exists()
    agent = support.signed_in(acme, "analyst@acme.test")
    assert agent.get("/audit/sinks/").status_code == 403


@pytest.mark.slow
def test_it_delivers_each_event_exactly_once_across_a_worker_restart(django_db_blocker):
    receiver = SyslogReceiver()
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug="globex")
        worker = support.Worker("default", extra_env={"PARLEY_AUDIT_FORWARD_BATCH": "5"}).start()
        try:
            with tenant_context(tenant):
                for i in range(60):
                    record("user.updated", details={"siem": i})
                sink = AuditSink.objects.create(
                    name="restart",
                    kind="syslog",
                    host="127.0.0.1",
                    port=receiver.port,
                    use_tls=False,
                )
                forward_sink.delay(sink.pk)
            deadline = time.monotonic() + 60
            while len(receiver.seqs()) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            worker.stop()  # warm shutdown mid-delivery: the queued continuation waits in Redis
            sent_before_restart = len(receiver.seqs())
            with tenant_context(tenant):
                for i in range(15):
                    record("user.updated", details={"after_restart": i})
                head = (
                    AuditEvent.objects.filter(seq__isnull=False)
                    .order_by("-seq")
                    .values_list("seq", flat=True)
                    .first()
                )
            worker = support.Worker(
                "default", extra_env={"PARLEY_AUDIT_FORWARD_BATCH": "5"}
            ).start()
            with tenant_context(tenant):
                forward_sink.delay(sink.pk)
            deadline = time.monotonic() + 90
            while (
                not receiver.seqs() or max(receiver.seqs()) < head
            ) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            worker.stop()
            receiver.close()
        assert 0 < sent_before_restart < head
        assert receiver.errors == []
        assert receiver.duplicates() == {}
        assert sorted(receiver.seqs()) == list(range(1, head + 1))
        with tenant_context(tenant):
            sink.refresh_from_db()
            AuditSink.objects.filter(pk=sink.pk).update(enabled=False)
        assert sink.cursor_seq == head and sink.delivered_count == head
