"""The database refuses to change or remove audit events, whoever asks."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from audit.services import record, seal
from tenants.services import tenant_create

MUTATIONS = [
    "UPDATE audit_auditevent SET actor_name = 'mallory'",
    "DELETE FROM audit_auditevent",
    "TRUNCATE audit_auditevent",
]


def _refused(statement: str) -> str:
    with (
        pytest.raises(DatabaseError) as excinfo,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    return str(excinfo.value)


@pytest.mark.django_db
@pytest.mark.parametrize("statement", MUTATIONS)
def test_it_refuses_raw_sql_mutations_from_the_app_role(acme, statement):
    with tenant_context(acme):
        record("auth.logout")
        assert "permission denied" in _refused(statement)
        assert AuditEvent.objects.exists()


@pytest.mark.django_db
def test_it_refuses_orm_mutations_and_trigger_tampering_from_the_app_role(acme):
    with tenant_context(acme):
        event = record("auth.logout")
        with pytest.raises(DatabaseError), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).update(actor_name="mallory")
        with pytest.raises(DatabaseError), transaction.atomic():
            AuditEvent.objects.filter(pk=event.pk).delete()
        for statement in (
            "ALTER TABLE audit_auditevent DISABLE TRIGGER USER",
            "DROP TRIGGER IF EXISTS pgtrigger_audit_seal_only_f5497 ON audit_auditevent",
            "SET session_replication_role = replica",
            "SET ROLE parley_owner",
            "CREATE TABLE audit_copy (id int)",
            "CREATE TEMP TABLE scratch (id int)",
            "CREATE SCHEMA attacker",
        ):
            message = _refused(statement)
            assert "permission denied" in message or "must be owner" in message, (
                statement,
                message,
            )
        # pgtrigger's ignore switch is open to anyone, but the privileges still hold.
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('pgtrigger.ignore', '{audit_auditevent:pgtrigger_audit_seal_only_f5497}', true)"
            )
            cursor.execute("UPDATE audit_auditevent SET actor_name = 'mallory'")
        assert AuditEvent.objects.get(pk=event.pk).actor_name == event.actor_name


@pytest.mark.parametrize("statement", MUTATIONS)
def test_it_refuses_mutations_by_trigger_even_for_the_owner(owner_db, acme, statement):
    with tenant_context(acme):
        record("auth.logout")
        message = _refused(statement)
        assert "append-only" in message or "Cannot" in message, message


def test_it_revokes_mutations_on_a_freshly_cloned_tenant(owner_db):
    tenant_create(
        slug="initech", name="Initech", domain="initech.localhost", owner_email="boss@initech.test"
    )
    with connection.cursor() as cursor:
        for column, expected in (
            ("hash", False),
            ("seq", False),
            ("actor_name", False),
            ("details", False),
        ):
            cursor.execute(
                "SELECT has_column_privilege('parley_app', 't_initech.audit_auditevent', %s, 'UPDATE')",
                [column],
            )
            assert cursor.fetchone()[0] is expected, column
        for privilege, expected in (
            ("SELECT", True),
            ("INSERT", True),
            ("UPDATE", False),
            ("DELETE", False),
            ("TRUNCATE", False),
            ("TRIGGER", False),
            ("REFERENCES", False),
        ):
            cursor.execute(
                "SELECT has_table_privilege('parley_app', 't_initech.audit_auditevent', %s)",
                [privilege],
            )
            assert cursor.fetchone()[0] is expected, privilege
        cursor.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 't_initech' AND tablename = 'audit_auditevent'"
        )
        assert cursor.fetchone()[0] == "parley_owner"


@pytest.mark.django_db
def test_it_lets_the_app_role_seal_only_through_audit_seal(acme):
    with tenant_context(acme):
        event = record("auth.logout")
        assert AuditEvent.objects.get(pk=event.pk).seq is None
        # Content of an unsealed event cannot be touched either.
        assert "permission denied" in _refused(
            f"UPDATE audit_auditevent SET details = '{{}}'::jsonb WHERE id = {int(event.pk)}"  # noqa: S608
        )
        assert seal() >= 1
        sealed = AuditEvent.objects.get(pk=event.pk)
        assert sealed.seq and len(sealed.hash) == 64
        assert "permission denied" in _refused(
            f"UPDATE audit_auditevent SET hash = repeat('0', 64) WHERE id = {int(event.pk)}"  # noqa: S608
        )
