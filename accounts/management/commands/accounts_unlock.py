from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context

from accounts import lockout
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
        with schema_context(schema):
            lockout.clear(username=options["username"], ip=options["ip"])
        self.stdout.write(self.style.SUCCESS("Lock lifted."))
