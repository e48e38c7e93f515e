"""The per-event path of a channel: what a webhook and a reply write, and how many queries.

bench/webhooks.py found every webhook of a channel queueing on two rows: the
credential's (``last_used_at``/``use_count`` on every decryption, plus a
``credential.used`` audit event sealed under the tenant's chain lock) and the
channel's (``last_event_at``). A secret used on every event is now decrypted
once per process per ``REUSE_SECONDS`` (keyed on its ciphertext as just read),
and "last event" is written at most once a minute. These tests pin what that
may and may not change, and the query counts per inbound message and per reply.

Django's test transaction never commits, so ``on_commit`` callbacks (where a
decrypted secret is kept, once its use is recorded) run only inside
``django_capture_on_commit_callbacks(execute=True)``, as a real commit would.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from connectors import channels, health, inbound, services
from connectors.models import Channel, ChannelCredential, Credential, InboundEvent
from connectors.services import credential_replace, credential_set, credential_use
from connectors.tasks import message_deliver
from conversations.models import Inbox, Message
from parley.keyring import fields
from parley.rows import tenant_table
from tests.connectors.meta.support import APP_SECRET, TOKEN, signed
from tests.connectors.test_inbound_events import _meta_channel, _post
from tests.fakes.graph import FakeGraph

PHONE = "106540352242922"
CLOSED = {d: [["00:00", "00:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

# Queries per event once the process is warm (its secrets decrypted, keys unwrapped).
# Django's test transaction adds SAVEPOINT/RELEASE pairs and cannot keep unwrapped
# keys (parley.keyring caches a key once committed), so the figures here are a little
# above a real worker's; they are pinned so that a change shows up, not as the real
# counts. Raise them only with a reason in docs/scaling.md ("Channels: measured").
# Webhook: 12 before the store became one INSERT … ON CONFLICT (no SELECT first, no
# savepoint around the insert); 9 before the channel, its inbox and its credentials
# came in one statement (connectors.channels.channel_for_webhook); 8 before the
# event's INSERT ran as its own transaction (no atomic block: here its savepoint
# pair, in production BEGIN and COMMIT); 6 before that channel read also reserved
# the event's id (one nextval fewer); 5 before those two statements named the tenant's
# schema (no SET search_path for them: parley.rows.prepared_cursor(own_schema=True)).
WEBHOOK_QUERIES = 4
# Processing: the message itself (for a new sender: the contact and its identity, the
# identity's race settled by ON CONFLICT instead of a savepoint, no conversation lookup
# for a contact created just now, the conversation inserted RETURNING its row, both
# message ids reserved in one round trip and both rows in one INSERT), + 3 for the
# bots' auto-reply veto (one read in its own savepoint) + 1 for "may a bot take it?"
# (bots.engine.bot_may_take), which spares a Celery task per message on inboxes
# without a bot. 30, then 25 before those changes.
PROCESS_QUERIES = 21
# Delivery: 4, no savepoint (was 16): one read of the message with its conversation's
# contact and its inbox's channel, one of the channel's send credentials, the claim
# (a conditional UPDATE ... RETURNING the attempt count and the recipient's id on the
# channel), and one UPDATE writing the attempt log and the ``sent`` status together.
DELIVER_QUERIES = 4


def _payload(n: int, sender: str | None = None, run: str = "hot") -> bytes:
    """A WhatsApp text from ``sender`` (a new one per ``n`` by default), id ``wamid.<run>.<n>``."""
    sender = sender or f"1650{n:09d}"
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE},
        "contacts": [{"profile": {"name": f"Customer {n}"}, "wa_id": sender}],
        "messages": [
            {
                "from": sender,
                "id": f"wamid.{run}.{n}",
                "timestamp": "1700000000",
                "type": "text",
                "text": {"body": "hello"},
            }
        ],
    }
    doc = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(doc).encode()


@pytest.fixture(autouse=True)
def _forget_secrets():
    services.credentials_forget()
    yield
    services.credentials_forget()


def _uses(credential_id: int) -> list[dict]:
    return [
        e.details
        for e in AuditEvent.objects.filter(
            action="credential.used", target_id=str(credential_id)
        ).order_by("id")
    ]


def _app_secret(channel) -> Credential:
    return ChannelCredential.objects.get(channel_id=channel.pk, role="app_secret").credential


def _webhook(channel, n: int, secret: str = APP_SECRET, committed=None):
    body = _payload(n)
    if committed is None:
        return _post(channel, body, signed(body, secret))
    with committed(execute=True):
        return _post(channel, body, signed(body, secret))


# --- the channel behind a webhook URL ---------------------------------------------------------------


def _ours(queries) -> int:
    """Statements run, not counting django-tenants' SET search_path."""
    return sum(not q["sql"].startswith("SET search_path") for q in queries.captured_queries)


@pytest.mark.django_db
def test_the_webhook_s_channel_comes_in_one_statement_as_the_orm_would_build_it(acme):
    """What a webhook uses of its channel and credentials, in one statement; the
    other columns deferred (read on access, as with ``only()``); the inbox only for
    a kind that answers in the request."""
    channel = _meta_channel(acme, "whatsapp", PHONE)
    with tenant_context(acme):
        with CaptureQueriesContext(connection) as queries:
            found = channels.channel_for_webhook(kind="whatsapp", public_id=channel.public_id)
            links = list(found.credential_links.all())
            ciphertexts = {link.role: bytes(link.credential.secret_ct) for link in links}
            credential_read = {
                name: getattr(links[0].credential, name)
                for name in channels.WEBHOOK_FIELDS[Credential]
            }
        assert _ours(queries) == 1
        expected = Channel.objects.get(pk=channel.pk)
        read = channels.WEBHOOK_FIELDS[Channel]
        assert {name: getattr(found, name) for name in read} == {
            name: getattr(expected, name) for name in read
        }
        everything = {f.attname for f in Channel._meta.concrete_fields}
        assert found.get_deferred_fields() == everything - read
        assert read < everything and {"created_at", "last_error_code"} <= everything - read
        stored = ChannelCredential.objects.filter(channel=channel).select_related("credential")
        assert ciphertexts == {link.role: bytes(link.credential.secret_ct) for link in stored}
        assert sorted(ciphertexts) == ["app_secret", "verify_token"]
        assert credential_read == {
            name: getattr(
                links[0].credential.__class__.objects.get(pk=links[0].credential_id), name
            )
            for name in channels.WEBHOOK_FIELDS[Credential]
        }
        # The same statement reserved one event id, once for its two joined rows.
        assert fields.reserve_ids(InboundEvent._meta.db_table) == [found.reserved_event_id + 1]

        # A deferred column, or the inbox of a kind that does not answer in the
        # request, is still there when asked for: one query each, right values.
        inbox = Inbox.objects.get(channel=channel)
        with CaptureQueriesContext(connection) as queries:
            assert found.created_at == expected.created_at
            assert found.inbox.pk == inbox.pk
        assert _ours(queries) == 2

        # The API kind answers in the request: its inbox comes in the same statement.
        api = Channel.objects.create(name="api", kind="api", public_id="api-channel")
        api_inbox = Inbox.objects.create(name="api inbox", channel=api)
        with CaptureQueriesContext(connection) as queries:
            found = channels.channel_for_webhook(kind="api", public_id="api-channel")
            assert found.inbox.pk == api_inbox.pk and found.inbox.channel is found
            assert found.inbox.name == "api inbox"
        assert _ours(queries) == 1

        # No inbox, no credentials: both read as the ORM's would, with no query.
        bare = Channel.objects.create(name="bare", kind="api", public_id="bare-channel")
        with CaptureQueriesContext(connection) as queries:
            found = channels.channel_for_webhook(kind="api", public_id="bare-channel")
            assert found.pk == bare.pk
            assert list(found.credential_links.all()) == []
            with pytest.raises(Inbox.DoesNotExist):
                found.inbox  # noqa: B018 - the access is the test
        assert _ours(queries) == 1

        # Another kind, paused, unknown: none.
        assert channels.channel_for_webhook(kind="messenger", public_id=channel.public_id) is None
        Channel.objects.filter(pk=channel.pk).update(enabled=False)
        assert channels.channel_for_webhook(kind="whatsapp", public_id=channel.public_id) is None
        assert channels.channel_for_webhook(kind="whatsapp", public_id="nope") is None
    connection.set_schema_to_public()


def _one_public_id_in_each(*tenants, public_id: str) -> dict[str, int]:
    """A WhatsApp channel with ``public_id`` in each tenant: ``{slug: channel id}``."""
    ids = {}
    for tenant in tenants:
        with tenant_context(tenant):
            ids[tenant.slug] = Channel.objects.create(
                name=f"{tenant.slug} channel", kind="whatsapp", public_id=public_id
            ).pk
    return ids


def _search_path() -> str:
    with connection.connection.cursor() as raw:  # not through django-tenants: no SET first
        raw.execute("SHOW search_path")
        return raw.fetchone()[0]


@pytest.mark.django_db
def test_the_webhook_s_statements_name_their_schema_and_send_no_set_search_path(
    acme, globex, django_capture_on_commit_callbacks
):
    """A webhook's tenant lookup leaves the connection on ``public``; its channel read
    and its INSERT name the tenant's schema, so django-tenants' SET search_path (a
    round trip) is not sent for them. The path stays as it was, django-tenants still
    knows it is not the tenant's, and the next ordinary query sets it."""

    def store(tenant, key):
        found = channels.channel_for_webhook(kind="whatsapp", public_id="shared-public-id")
        event, created = inbound.inbound_event_store(
            channel=found, raw=b"{}", key=key, pk=found.reserved_event_id
        )
        assert created and found.pk == ids[tenant.slug]
        return event

    ids = _one_public_id_in_each(acme, globex, public_id="shared-public-id")
    for tenant in (acme, globex):
        # Warm: the tenant's key unwrapped and kept (on commit), "last event" written.
        with tenant_context(tenant), django_capture_on_commit_callbacks(execute=True):
            store(tenant, "warm")
    for tenant in (acme, globex):
        connection.set_schema_to_public()
        with connection.cursor() as cursor:  # as the tenant lookup: public's SET, a query
            cursor.execute("SELECT 1")
        assert _search_path() == "public"
        connection.set_tenant(tenant)
        with CaptureQueriesContext(connection) as queries:
            event = store(tenant, "k")
        sent = [q["sql"] for q in queries.captured_queries]
        assert len(sent) == 2 and not any(sql.startswith("SET") for sql in sent), sent
        assert all(f'"{tenant.schema_name}".' in sql for sql in sent)
        assert _search_path() == "public"
        # The next ordinary query sets the tenant's path and finds the row there.
        assert InboundEvent.objects.get(pk=event.pk).channel_id == ids[tenant.slug]
        assert _search_path().startswith(tenant.schema_name)
    connection.set_schema_to_public()


def test_a_tenant_table_takes_only_a_schema_name():
    assert tenant_table(InboundEvent, "t_acme") == '"t_acme"."connectors_inboundevent"'
    for bad in ('t"; DROP TABLE x; --', "", "t acme", "t\x00", "t\ud800", "١٢", None, 7, "x" * 64):
        with pytest.raises(ValueError):
            tenant_table(InboundEvent, bad)


@pytest.mark.django_db
def test_the_drain_s_channel_and_inbox_come_in_one_statement_as_the_orm_would_build_them(acme):
    channel = _meta_channel(acme, "whatsapp", PHONE)
    with tenant_context(acme):
        with CaptureQueriesContext(connection) as queries:
            found = channels.channel_with_inbox(channel_id=channel.pk)
            inbox = found.inbox
        assert _ours(queries) == 1
        expected = Channel.objects.select_related("inbox").get(pk=channel.pk)
        assert [getattr(found, f.attname) for f in Channel._meta.concrete_fields] == [
            getattr(expected, f.attname) for f in Channel._meta.concrete_fields
        ]
        assert [getattr(inbox, f.attname) for f in Inbox._meta.concrete_fields] == [
            getattr(expected.inbox, f.attname) for f in Inbox._meta.concrete_fields
        ]
        assert inbox.channel is found

        # No inbox: read as the ORM's would, with no query (the drain then fails the
        # event as "not bound to an inbox").
        bare = Channel.objects.create(name="bare", kind="whatsapp", public_id="bare-channel")
        with CaptureQueriesContext(connection) as queries:
            found = channels.channel_with_inbox(channel_id=bare.pk)
            assert getattr(found, "inbox", None) is None
        assert _ours(queries) == 1
        with pytest.raises(Channel.DoesNotExist):
            channels.channel_with_inbox(channel_id=bare.pk + 1000)
    connection.set_schema_to_public()


@pytest.mark.django_db
def test_prepared_on_one_connection_the_channel_read_follows_the_tenant(acme, globex):
    """The webhook's channel read and event INSERT are prepared statements
    (parley.rows.prepared_cursor); one connection serves every tenant, and each
    tenant must read and write its own tables: PostgreSQL plans a prepared
    statement again when search_path has changed."""
    ids = _one_public_id_in_each(acme, globex, public_id="same-public-id")
    for n in range(8):  # past psycopg's threshold, alternating tenants
        for tenant in (acme, globex):
            with tenant_context(tenant):
                found = channels.channel_for_webhook(kind="whatsapp", public_id="same-public-id")
                assert (found.name, found.pk) == (f"{tenant.slug} channel", ids[tenant.slug])
                event, created = inbound.inbound_event_store(
                    channel=found, raw=b"{}", key=f"k{n}", pk=found.reserved_event_id
                )
                assert created and event.pk == found.reserved_event_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        prepared = [row[0] for row in cursor.fetchall()]
    for tenant in (acme, globex):  # one copy of each statement per tenant: it names the schema
        schema = f'"{tenant.schema_name}"'
        assert any(sql.startswith(f"INSERT INTO {schema}.") for sql in prepared)
        assert any(
            '"reserved"' in sql and f'{schema}."connectors_channel"' in sql for sql in prepared
        )
    assert not any(sql.startswith("SET") for sql in prepared)  # one text per tenant: not kept
    for tenant in (acme, globex):
        with tenant_context(tenant):
            assert sorted(InboundEvent.objects.values_list("dedupe_key", flat=True)) == [
                f"k{n}" for n in range(8)
            ]
            assert set(InboundEvent.objects.values_list("channel_id", flat=True)) == {
                ids[tenant.slug]
            }
    connection.set_schema_to_public()


# --- the webhook secret ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_channel_s_webhook_secret_is_decrypted_and_audited_once_for_many_events(
    acme, django_capture_on_commit_callbacks
):
    channel = _meta_channel(acme, "whatsapp", PHONE)

    answers = [_webhook(channel, n, committed=django_capture_on_commit_callbacks) for n in range(4)]

    assert [a.status_code for a in answers] == [200] * 4, answers[0].content
    with tenant_context(acme):
        credential = _app_secret(channel)
        uses = _uses(credential.pk)
        assert len(uses) == 1
        assert uses[0]["purpose"] == "channel.verify"
        assert uses[0]["reused_for_seconds"] == services.REUSE_SECONDS
        # use_count counts decryptions, the same number as credential.used events.
        assert credential.use_count == 1
        assert credential.last_used_at is not None
        assert InboundEvent.objects.filter(channel_id=channel.pk).count() == 4


@pytest.mark.django_db
def test_a_replaced_secret_is_never_served_from_a_previous_decryption(
    acme, django_capture_on_commit_callbacks
):
    channel = _meta_channel(acme, "whatsapp", PHONE)
    assert _webhook(channel, 0, committed=django_capture_on_commit_callbacks).status_code == 200
    with tenant_context(acme):
        credential = _app_secret(channel)
        # Replaced outside this process's commit hooks: as another process would,
        # so nothing here is told to forget; the new ciphertext alone must do it.
        credential_replace(credential=credential, secret="the-new-app-secret")
    connection.set_schema_to_public()

    old = _webhook(channel, 1, committed=django_capture_on_commit_callbacks)
    new = _webhook(channel, 2, "the-new-app-secret", committed=django_capture_on_commit_callbacks)

    assert old.status_code == 401 and old.json()["code"] == "signature_invalid"
    assert new.status_code == 200, new.content
    with tenant_context(acme):
        assert len(_uses(credential.pk)) == 2  # the first secret once, the new one once
        assert not InboundEvent.objects.filter(dedupe_key__endswith="wamid.hot.1").exists()


@pytest.mark.django_db
def test_a_paused_or_deleted_channel_s_secret_is_not_used(acme, django_capture_on_commit_callbacks):
    channel = _meta_channel(acme, "whatsapp", PHONE)
    assert _webhook(channel, 0, committed=django_capture_on_commit_callbacks).status_code == 200
    with tenant_context(acme):
        Channel.objects.filter(pk=channel.pk).update(enabled=False)
    connection.set_schema_to_public()
    paused = _webhook(channel, 1, committed=django_capture_on_commit_callbacks)
    with tenant_context(acme):
        assert InboundEvent.objects.count() == 1
        credential_id = _app_secret(channel).pk
        Inbox.objects.filter(channel_id=channel.pk).update(channel=None)
        Channel.objects.filter(pk=channel.pk).delete()
    connection.set_schema_to_public()
    deleted = _webhook(channel, 2, committed=django_capture_on_commit_callbacks)

    assert paused.status_code == 404 and deleted.status_code == 404
    with tenant_context(acme):
        assert len(_uses(credential_id)) == 1


@pytest.mark.django_db
def test_a_deleted_credential_is_forgotten_by_this_process(acme):
    with tenant_context(acme):
        credential = credential_set(
            name="hot-path-key", kind="api_key", connector="hubspot", secret="key-0123456789"
        )
        assert credential_use(credential=credential, purpose="t", reuse=True) == "key-0123456789"
        key = services._reuse_key(credential, "t")
        # The test transaction does not commit: keep it as a commit would have.
        services._reused[key] = ("key-0123456789", 10**12)

        services.credential_delete(credential=credential)
        services.credentials_forget(credential.pk)  # what the delete's on_commit runs

        assert key not in services._reused


@pytest.mark.django_db
def test_a_reuse_lasts_reuse_seconds_then_the_secret_is_decrypted_and_audited_again(
    acme, django_capture_on_commit_callbacks, monkeypatch
):
    channel = _meta_channel(acme, "whatsapp", PHONE)
    monkeypatch.setattr(services, "REUSE_SECONDS", 0)

    answers = [_webhook(channel, n, committed=django_capture_on_commit_callbacks) for n in range(3)]

    assert [a.status_code for a in answers] == [200] * 3
    with tenant_context(acme):
        credential = _app_secret(channel)
        assert len(_uses(credential.pk)) == 3
        assert credential.use_count == 3


@pytest.mark.django_db
def test_a_use_without_reuse_is_decrypted_and_audited_every_time(
    acme, django_capture_on_commit_callbacks
):
    with tenant_context(acme):
        credential = credential_set(
            name="hot-path-test", kind="api_key", connector="hubspot", secret="key-0123456789"
        )
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(3):
                assert services.credential_test(credential=credential)
        credential.refresh_from_db()
        assert len(_uses(credential.pk)) == 3 and credential.use_count == 3
        assert all("reused_for_seconds" not in details for details in _uses(credential.pk))


@pytest.mark.django_db
def test_a_rolled_back_use_is_not_kept_for_reuse(acme):
    with tenant_context(acme):
        credential = credential_set(
            name="hot-path-rollback", kind="api_key", connector="hubspot", secret="key-0123456789"
        )
        credential_use(credential=credential, purpose="t", reuse=True)
        # Never committed (the test transaction): the use was never recorded for good.
        assert services._reuse_key(credential, "t") not in services._reused


# --- last event --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_last_event_is_written_once_a_minute_not_per_event(acme):
    channel = _meta_channel(acme, "whatsapp", PHONE)
    assert _webhook(channel, 0).status_code == 200
    with tenant_context(acme):
        first = Channel.objects.get(pk=channel.pk).last_event_at
    assert first is not None
    assert _webhook(channel, 1).status_code == 200
    with tenant_context(acme):
        assert Channel.objects.get(pk=channel.pk).last_event_at == first
        earlier = timezone.now() - timedelta(seconds=health.EVENT_SEEN_SECONDS + 5)
        Channel.objects.filter(pk=channel.pk).update(last_event_at=earlier)
    assert _webhook(channel, 2).status_code == 200
    with tenant_context(acme):
        assert Channel.objects.get(pk=channel.pk).last_event_at > earlier + timedelta(seconds=5)


# --- the access token and the query budget ----------------------------------------------------------


def _reply_channel(acme, graph) -> Channel:
    channel = _meta_channel(acme, "whatsapp", PHONE)
    with tenant_context(acme):
        Channel.objects.filter(pk=channel.pk).update(
            settings={"phone_number_id": PHONE, "graph_base_url": graph.base_url}
        )
        credential = credential_set(
            name=f"{channel.public_id}-access-token",
            kind="access_token",
            connector="whatsapp",
            secret=TOKEN,
        )
        ChannelCredential.objects.create(
            channel=channel, role="access_token", credential=credential
        )
        # Closed at all hours with an auto-reply: each new sender gets one reply.
        Inbox.objects.filter(channel_id=channel.pk).update(
            business_hours=CLOSED, auto_reply="We are closed, we answer tomorrow."
        )
    connection.set_schema_to_public()
    return channel


def _one_message(acme, channel, n: int, committed) -> dict[str, int]:
    """Webhook, worker processing and reply delivery of message ``n``: queries of each."""
    body = _payload(n)
    with CaptureQueriesContext(connection) as webhook, committed(execute=True):
        response = _post(channel, body, signed(body))
    assert response.status_code == 200, response.content
    with tenant_context(acme):
        event_id = InboundEvent.objects.get(dedupe_key__endswith=f"wamid.hot.{n}").pk
        with CaptureQueriesContext(connection) as process, committed(execute=True):
            assert inbound.inbound_event_process(event_id=event_id) == "processed"
        reply = Message.objects.filter(direction="out").order_by("-pk").first()
        with CaptureQueriesContext(connection) as deliver, committed(execute=True):
            assert message_deliver.apply(args=(reply.pk,)).get()["delivery"] == "sent"
    connection.set_schema_to_public()
    return {
        "webhook": len(webhook.captured_queries),
        "process": len(process.captured_queries),
        "deliver": len(deliver.captured_queries),
    }


@pytest.mark.django_db
def test_queries_per_inbound_message_and_per_reply_are_pinned(
    acme, django_capture_on_commit_callbacks
):
    with FakeGraph(token=TOKEN) as graph:
        channel = _reply_channel(acme, graph)
        _one_message(acme, channel, 0, django_capture_on_commit_callbacks)  # warm

        counts = [
            _one_message(acme, channel, n, django_capture_on_commit_callbacks) for n in (1, 2)
        ]

        assert len(graph.requests) == 3
    assert counts[0] == counts[1], counts
    assert counts[0] == {
        "webhook": WEBHOOK_QUERIES,
        "process": PROCESS_QUERIES,
        "deliver": DELIVER_QUERIES,
    }
    with tenant_context(acme):
        token = ChannelCredential.objects.get(channel_id=channel.pk, role="access_token")
        # Three replies, one decryption of the access token (and one of the app secret).
        assert [u["purpose"] for u in _uses(token.credential_id)] == ["channel.sign"]
        assert len(_uses(_app_secret(channel).pk)) == 1


def test_threads_that_miss_together_decrypt_once(monkeypatch):
    """A process's first events (or the minute running out) arrive on several threads
    at once: one decrypts and records, the others wait for it and reuse."""
    decrypted = []

    def decrypt_and_record(credential, purpose, actor, *, key):
        decrypted.append(purpose)
        time.sleep(0.05)  # the decryption, its UPDATE and audit event, the commit
        services._reused[key] = ("the-secret", time.monotonic() + 60)  # as on commit
        return "the-secret"

    monkeypatch.setattr(services, "_decrypt_and_record", decrypt_and_record)
    credential = Credential(pk=987654, secret_ct=b"\x01ciphertext")
    results = []

    def use():
        results.append(credential_use(credential=credential, purpose="channel.verify", reuse=True))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["the-secret"] * 8
    assert decrypted == ["channel.verify"]
