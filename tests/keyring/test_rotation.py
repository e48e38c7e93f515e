"""Key rotation: re-encryption while writes continue, and after a killed worker."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django_tenants.utils import tenant_context

from accounts import mfa
from accounts.models import TOTPDevice
from connectors.models import Credential
from connectors.services import credential_set, credential_use
from parley.keyring import fields, keys
from parley.keyring.rekey import rotate_and_schedule, rows_on_older_keys, run
from parley.keyring.services import keys_rotate
from parley.models import RekeyJob, WrappedKey
from tenants.models import Tenant
from tests import support


def _all_readable(tenant) -> list[str]:
    with tenant_context(tenant):
        return [
            credential_use(credential=c, purpose="check") for c in Credential.objects.order_by("pk")
        ]


def _cleanup(tenant, prefix: str) -> None:
    with tenant_context(tenant):
        Credential.objects.filter(name__startswith=prefix).delete()


@pytest.mark.django_db
def test_it_rotates_and_reencrypts_inline(acme):
    with tenant_context(acme):
        for i in range(5):
            credential_set(
                name=f"inline-{i}", kind="api_key", connector="hubspot", secret=f"secret-{i}-abcdef"
            )
        # TOTP keys are sealed with the credential key too: they move along.
        user = get_user_model().objects.get(email="analyst@acme.test")
        device = TOTPDevice.objects.create(user=user, name="rotating", confirmed=True)
        totp_key = device.bin_key
        rows = Credential.objects.count() + TOTPDevice.objects.count()
        jobs = keys_rotate()
        job = next(j for j in jobs if j.purpose == "credential")
        assert job.rows_total == rows
        done = run(job.pk, batch=2)
        assert done.state == RekeyJob.State.DONE and done.rows_done == rows and done.percent == 100
        assert rows_on_older_keys(acme.schema_name, "credential", job.target_version) == 0
        versions = {fields.key_version_of(bytes(c.secret_ct)) for c in Credential.objects.all()}
        versions |= {fields.key_version_of(bytes(d.key_ct)) for d in TOTPDevice.objects.all()}
        assert versions == {job.target_version}
        assert sorted(
            credential_use(credential=c, purpose="t") for c in Credential.objects.all()
        ) == [f"secret-{i}-abcdef" for i in range(5)]
        device = TOTPDevice.objects.get(pk=device.pk)
        assert device.bin_key == totp_key
        assert mfa.verify(user, support.totp_now(device)) == device
        old = WrappedKey.objects.get(
            schema_name=acme.schema_name, purpose="credential", version=job.target_version - 1
        )
        assert old.state == WrappedKey.State.DESTROYED and old.wrapped == ""


@pytest.mark.slow
def test_it_reencrypts_while_writes_continue(django_db_blocker):
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug="globex")
        try:
            with tenant_context(tenant):
                for i in range(60):
                    credential_set(
                        name=f"live-{i}",
                        kind="api_key",
                        connector="hubspot",
                        secret=f"live-secret-{i}",
                    )
                # Rotate without enqueuing: this test drives the job itself
                # (a running worker would otherwise race it to the end).
                jobs = rotate_and_schedule(schema=tenant.schema_name)
            job = next(j for j in jobs if j.purpose == "credential")
            stop, errors, progress = threading.Event(), [], [0]

            def writer() -> None:
                try:
                    connection.set_tenant(tenant)
                    n = 0
                    while not stop.is_set() and n < 2000:
                        credential = Credential.objects.get(name=f"live-{n % 60}")
                        from connectors.services import credential_replace

                        credential_replace(
                            credential=credential, secret=f"live-secret-{n % 60}-r{n}"
                        )
                        credential_set(
                            name=f"live-new-{n}",
                            kind="api_key",
                            connector="hubspot",
                            secret=f"new-{n}-xyz",
                        )
                        n += 1
                        progress[0] = n
                        time.sleep(0.01)  # a busy workspace, not a tight loop
                except BaseException as exc:
                    errors.append(exc)
                finally:
                    connections.close_all()

            thread = threading.Thread(target=writer)
            thread.start()
            connection.set_schema_to_public()
            time.sleep(0.1)  # writes are under way
            writes_before = progress[0]
            while run(job.pk, batch=5, max_batches=1).state != RekeyJob.State.DONE:
                time.sleep(0.02)  # paced like a worker sharing the database
            assert progress[0] > writes_before  # writes went on during the re-encryption
            stop.set()
            thread.join()
            assert errors == []
            readable = _all_readable(tenant)
            assert len(readable) >= 60 and all(readable)
            connection.set_schema_to_public()
            # Whatever landed after the job passed by was caught by the follow-up check.
            for follow_up in RekeyJob.objects.filter(
                schema_name=tenant.schema_name, state=RekeyJob.State.PENDING
            ):
                run(follow_up.pk)
            assert rows_on_older_keys(tenant.schema_name, "credential", job.target_version) == 0
        finally:
            _cleanup(tenant, "live-")


@pytest.mark.slow
def test_it_resumes_reencryption_after_the_worker_is_killed(django_db_blocker):
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug="globex")
        worker = None
        try:
            with tenant_context(tenant):
                for i in range(200):
                    credential_set(
                        name=f"kill-{i}",
                        kind="api_key",
                        connector="hubspot",
                        secret=f"kill-secret-{i}",
                    )
            # A queue of its own: the session's worker must not finish the job first.
            worker = support.Worker(
                "rekey-kill-test", extra_env={"PARLEY_REKEY_BATCH": "1"}
            ).start()
            jobs = rotate_and_schedule(schema=tenant.schema_name)
            job = next(j for j in jobs if j.purpose == "credential")
            from parley.tasks import rekey

            rekey.apply_async((job.pk,), queue="rekey-kill-test")
            deadline = time.monotonic() + 60
            while RekeyJob.objects.get(pk=job.pk).rows_done < 15 and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(worker.proc.pid, signal.SIGKILL)  # no warm shutdown: killed mid-run
            worker.proc.wait()
            killed_at = RekeyJob.objects.get(pk=job.pk)
            assert killed_at.state != RekeyJob.State.DONE and killed_at.rows_done >= 15

            worker = support.Worker("default", extra_env={"PARLEY_REKEY_BATCH": "50"}).start()
            from parley.tasks import resume_rekeys

            # Whatever the killed worker left (a queued continuation, or a job
            # whose heartbeat stopped) is picked up again.
            resume_rekeys.delay(0).get(timeout=30)
            deadline = time.monotonic() + 90
            while (
                RekeyJob.objects.get(pk=job.pk).state != RekeyJob.State.DONE
                and time.monotonic() < deadline
            ):
                time.sleep(0.1)
            finished = RekeyJob.objects.get(pk=job.pk)
            assert finished.state == RekeyJob.State.DONE, worker.log.read_text()[-2000:]
            assert rows_on_older_keys(tenant.schema_name, "credential", job.target_version) == 0
            keys.forget_cached()
            assert all(_all_readable(tenant))
        finally:
            if worker:
                worker.stop()
            connection.set_schema_to_public()
            _cleanup(tenant, "kill-")
