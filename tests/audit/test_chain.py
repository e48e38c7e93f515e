"""record() chains events in the caller's transaction; audit_verify finds tampering."""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django_tenants.utils import tenant_context

from audit.hashing import CONTENT_FIELDS, content_hash, link_hash
from audit.models import GENESIS_HASH, AuditEvent
from audit.services import UnknownActionError, record, seal
from audit.verify import verify_chain
from tenants.models import AuditAnchor, Tenant


def _seed(n: int) -> list[AuditEvent]:
    ids = [record("auth.logout", details={"n": i}).pk for i in range(n)]
    seal()  # the test transaction never commits, so seal here
    return list(AuditEvent.objects.filter(pk__in=ids).order_by("seq"))


@pytest.mark.django_db
def test_it_links_each_event_to_the_one_before(acme):
    with tenant_context(acme):
        events = _seed(3)
        for before, after in zip(events, events[1:], strict=False):
            assert after.seq == before.seq + 1
            assert after.prev_hash == before.hash
        first = AuditEvent.objects.filter(seq__isnull=False).order_by("seq").first()
        assert first.seq == 1 and first.prev_hash == GENESIS_HASH
        assert all(len(e.hash) == 64 for e in events)
        report = verify_chain(acme.schema_name)
        assert report.ok and report.head_seq == events[-1].seq


@pytest.mark.django_db
def test_it_leaves_no_event_when_the_action_rolls_back(acme):
    with tenant_context(acme):
        before = AuditEvent.objects.count()
        with pytest.raises(RuntimeError), transaction.atomic():
            record("user.updated", target_type="user", target_id=1)
            raise RuntimeError("the action failed")
        assert AuditEvent.objects.count() == before
        assert verify_chain(acme.schema_name).ok


@pytest.mark.django_db
def test_it_refuses_actions_outside_the_catalogue(acme):
    with tenant_context(acme), pytest.raises(UnknownActionError):
        record("made.up.action")


@pytest.mark.django_db
def test_it_redacts_secret_looking_details(acme):
    with tenant_context(acme):
        event = record(
            "user.updated", details={"password": "hunter2", "api_token": "abc", "fields": ["email"]}
        )
        assert event.details == {
            "password": "[redacted]",
            "api_token": "[redacted]",
            "fields": ["email"],
        }


def _tamper(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


@pytest.fixture
def chain(owner_db, acme):
    """Ten fresh events in acme's chain; returns their sequence numbers."""
    with tenant_context(acme):
        yield [e.seq for e in _seed(10)]


def test_it_detects_an_altered_row(chain, acme):
    with tenant_context(acme):
        _tamper("UPDATE audit_auditevent SET actor_name = 'mallory' WHERE seq = %s", [chain[4]])
        report = verify_chain(acme.schema_name)
    assert report.broken_seq == chain[4] and "altered" in report.reason


def test_it_detects_a_deleted_row(chain, acme):
    with tenant_context(acme):
        _tamper("DELETE FROM audit_auditevent WHERE seq = %s", [chain[3]])
        report = verify_chain(acme.schema_name)
    assert report.broken_seq == chain[3] and "missing" in report.reason


def test_it_detects_a_forged_row_inserted_in_the_middle(chain, acme):
    at = chain[5]
    with tenant_context(acme):
        previous = AuditEvent.objects.get(seq=at - 1)
        # Make room (two steps: seq is unique), then insert a plausible forgery.
        _tamper("UPDATE audit_auditevent SET seq = -seq - 1 WHERE seq >= %s", [at])
        _tamper("UPDATE audit_auditevent SET seq = -seq WHERE seq < 0")
        forged = {
            "seq": at,
            "occurred_at": previous.occurred_at,
            "actor_kind": "user",
            "actor_id": "1",
            "actor_name": "owner@acme.test",
            "action": "user.role_changed",
            "target_type": "user",
            "target_id": "2",
            "outcome": "allowed",
            "ip": None,
            "user_agent": "",
            "request_id": "",
            "details": {"from": "agent", "to": "owner"},
            "prev_hash": previous.hash,
        }
        AuditEvent.objects.bulk_create([AuditEvent(**forged, content_hash="e" * 64, hash="f" * 64)])
        report = verify_chain(acme.schema_name)
    assert report.broken_seq == at and "altered" in report.reason


def test_it_detects_a_cut_off_tail_through_the_anchor(chain, acme):
    with tenant_context(acme):
        head = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq").first()
    AuditAnchor.objects.create(schema_name=acme.schema_name, seq=head.seq, hash=head.hash)
    with tenant_context(acme):
        _tamper("DELETE FROM audit_auditevent WHERE seq > %s", [chain[6]])
        report = verify_chain(acme.schema_name)
    assert report.broken_seq == chain[7] and "removed" in report.reason
    with pytest.raises(CommandError, match=f"t_acme#{chain[7]}"):
        call_command("audit_verify", "--tenant", "acme")


def test_it_detects_a_consistently_rewritten_chain_through_the_anchor(chain, acme):
    with tenant_context(acme):
        target = AuditEvent.objects.get(seq=chain[8])
    AuditAnchor.objects.create(schema_name=acme.schema_name, seq=target.seq, hash=target.hash)
    with tenant_context(acme):
        # Rewrite the last two events and recompute every hash so each link holds.
        prev_hash = AuditEvent.objects.get(seq=chain[7]).hash
        for seq in (chain[8], chain[9]):
            event = AuditEvent.objects.get(seq=seq)
            fields = {f: getattr(event, f) for f in CONTENT_FIELDS}
            fields["actor_name"] = "mallory"
            content = content_hash(fields)
            new_hash = link_hash(seq, event.occurred_at, prev_hash, content)
            _tamper(
                "UPDATE audit_auditevent SET actor_name = 'mallory', content_hash = %s, prev_hash = %s, hash = %s "
                "WHERE seq = %s",
                [content, prev_hash, new_hash, seq],
            )
            prev_hash = new_hash
        report = verify_chain(acme.schema_name)
    assert report.broken_seq == chain[8] and "rewritten" in report.reason


@pytest.mark.django_db
def test_it_prints_a_summary_for_an_intact_chain(capsys):
    call_command("audit_verify", "--all")
    out = capsys.readouterr().out
    assert "t_acme: intact" in out and "public: intact" in out and "chain(s) verified" in out


@pytest.mark.slow
def test_it_keeps_one_chain_with_eight_concurrent_writers(django_db_blocker):
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug="globex")
        with tenant_context(tenant):
            start = AuditEvent.objects.count()
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def writer(n: int) -> None:
            try:
                connection.set_tenant(tenant)
                barrier.wait()
                for i in range(40):
                    with transaction.atomic():
                        record("auth.logout", details={"writer": n, "i": i})
            except BaseException as exc:  # surfaced below
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        connection.set_schema_to_public()
        report = verify_chain(tenant.schema_name)
        assert report.ok, report.reason
        assert report.count == start + 320 and report.unsealed == 0
        with tenant_context(tenant):
            seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, len(seqs) + 1))
