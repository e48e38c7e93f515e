from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from audit.context import cli_actor
from parley.keyring.rekey import run
from parley.keyring.services import keys_rotate
from parley.models import RekeyJob
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Add new data and credential key versions for a tenant and re-encrypt its rows."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument(
            "--inline",
            action="store_true",
            help="re-encrypt in this process instead of on a worker, with progress",
        )

    def handle(self, *args, **options):
        tenant = Tenant.objects.businesses().filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        with tenant_context(tenant):
            jobs = keys_rotate(actor=cli_actor())
        for job in jobs:
            self.stdout.write(
                f"{job.purpose}: now v{job.target_version}, {job.rows_total} row(s) to re-encrypt"
            )
        if not options["inline"]:
            self.stdout.write(
                "Re-encryption runs on the workers; progress: the workspace's Security page."
            )
            return
        for job in jobs:
            while True:
                job = run(job.pk, max_batches=1)
                self.stdout.write(
                    f"  {job.purpose}: {job.rows_done}/{job.rows_total} ({job.percent}%)"
                )
                if job.state == RekeyJob.State.DONE:
                    break
        self.stdout.write(self.style.SUCCESS("Keys rotated; every row is on the new versions."))
