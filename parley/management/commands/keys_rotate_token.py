from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from audit.context import cli_actor
from parley.keyring import signing
from parley.keyring.services import token_key_rotate
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Rotate a tenant's API token-signing key: new tokens carry the new kid; tokens signed "
        "with the previous key keep working through PARLEY_TOKEN_KEY_GRACE_SECONDS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument(
            "--immediately",
            action="store_true",
            help="destroy the previous key now (it leaked): every earlier token is refused",
        )

    def handle(self, *args, **options):
        tenant = Tenant.objects.businesses().filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        with tenant_context(tenant):
            rotation = token_key_rotate(actor=cli_actor(), immediately=options["immediately"])
        self.stdout.write(f"token signing key: now {signing.kid_for(rotation.version)}")
        if rotation.previous is None:
            return
        previous = signing.kid_for(rotation.previous)
        if rotation.previous_valid_until is None:
            self.stdout.write(
                f"{previous} destroyed: tokens it signed are refused from now on, in every process."
            )
        else:
            self.stdout.write(
                f"{previous} still verifies until {rotation.previous_valid_until:%Y-%m-%d %H:%M:%S} "
                "UTC (every process sees the rotation within 10 seconds)."
            )
