from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_tenants.utils import schema_context

from accounts import lockout
from audit.context import cli_actor
from audit.services import record
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Lift a sign-in lock on an account and/or an address (in a tenant, or on the console with --platform)."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--tenant")
        target.add_argument("--platform", action="store_true")
        parser.add_argument("--username")
        parser.add_argument("--ip")

    def handle(self, *args, **options):
        if not options["username"] and not options["ip"]:
            raise CommandError("Give --username, --ip or both.")
        schema = "public"
        if options["tenant"]:
            tenant = Tenant.objects.businesses().filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
            schema = tenant.schema_name
        username, ip = options["username"] or "", options["ip"] or ""
        with schema_context(schema), transaction.atomic():
            # Recorded in the chain of the schema whose lock is lifted, by the OS account.
            record(
                "auth.lock_lifted",
                actor=cli_actor(),
                target_type="user" if username else "ip",
                target_id=username or ip,
                details={"user": username, "ip": ip, "via": "cli"},
            )
            lockout.clear(username=username or None, ip=ip or None)
        self.stdout.write(self.style.SUCCESS("Lock lifted."))
