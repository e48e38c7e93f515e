from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from audit.verify import verify_chain
from tenants.models import PUBLIC_SCHEMA, Tenant


class Command(BaseCommand):
    help = "Walk audit chains; exit 1 and name the first broken sequence number if one is broken."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--tenant", help="slug of the tenant whose chain to verify")
        group.add_argument(
            "--all", action="store_true", help="the platform chain and every tenant's"
        )

    def handle(self, *args, **options):
        connection.set_schema_to_public()
        if options["tenant"]:
            tenant = Tenant.objects.businesses().filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
            schemas = [tenant.schema_name]
        elif options["all"]:
            schemas = [
                PUBLIC_SCHEMA,
                *Tenant.objects.businesses()
                .exclude(
                    status__in=[
                        Tenant.Status.PROVISIONING,
                        Tenant.Status.FAILED,
                        Tenant.Status.OFFBOARDED,
                    ]
                )
                .order_by("slug")
                .values_list("schema_name", flat=True),
            ]
        else:
            schemas = [PUBLIC_SCHEMA]
        broken = []
        for schema in schemas:
            report = verify_chain(schema)
            if report.ok:
                self.stdout.write(self.style.SUCCESS(report.summary()))
            else:
                self.stdout.write(self.style.ERROR(report.summary()))
                broken.append(report)
        if broken:
            raise CommandError(
                f"{len(broken)} of {len(schemas)} chain(s) broken; first broken sequence number: "
                + ", ".join(f"{r.schema}#{r.broken_seq}" for r in broken)
            )
        self.stdout.write(f"{len(schemas)} chain(s) verified.")
