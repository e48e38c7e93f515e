from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from audit.context import cli_actor
from tenants.selectors import tenant_get
from tenants.services import OwnerRoleRequiredError, tenant_offboard, tenant_offboard_execute


class Command(BaseCommand):
    help = (
        "Offboard a tenant: close it now, and after the retention window drop its schema and destroy its "
        "keys (crypto-shredding). Exports nothing. --now destroys at once (owner role)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--confirm", required=True, help="repeat the slug to confirm")
        parser.add_argument("--retention-days", type=int, default=None)
        parser.add_argument(
            "--now", action="store_true", help="destroy immediately (needs PARLEY_DB_ROLE=owner)"
        )

    def handle(self, *args, **options):
        if options["confirm"] != options["slug"]:
            raise CommandError("--confirm must repeat the slug exactly; nothing was changed.")

        if options["now"] and settings.PARLEY_DB_ROLE != "owner":
            raise CommandError(
                "--now drops the schema: run with the owner role (make manage-owner); nothing was changed."
            )
        try:
            tenant = tenant_get(slug=options["slug"])
            if tenant.status != tenant.Status.OFFBOARDING:
                tenant = tenant_offboard(
                    tenant=tenant,
                    retention_days=0 if options["now"] else options["retention_days"],
                    actor=cli_actor(),
                )
                self.stdout.write(
                    f"Tenant {tenant.slug} closed; data destroyed after {tenant.offboard_after:%Y-%m-%d %H:%M} UTC."
                )
            if options["now"]:
                tenant = tenant_offboard_execute(tenant=tenant, actor=cli_actor())
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Tenant {tenant.slug} offboarded: schema dropped, keys destroyed."
                    )
                )
        except Http404:
            raise CommandError(f"No tenant with slug {options['slug']!r}.") from None
        except (ValidationError, OwnerRoleRequiredError) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from exc
