from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from audit.context import cli_actor
from conversations.services import tenant_phone_region_set
from tenants.selectors import tenant_get


class Command(BaseCommand):
    help = (
        "Set a tenant's default phone region (numbers written without +<country> are read "
        "in it) and re-index its contacts' phones for it."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("region", help="ISO 3166-1 alpha-2, e.g. US, GB, DE")

    def handle(self, *args, **options):
        try:
            changed = tenant_phone_region_set(
                tenant=tenant_get(slug=options["slug"]),
                region=options["region"],
                actor=cli_actor(),
            )
        except Http404:
            raise CommandError(f"No tenant with slug {options['slug']!r}.") from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Phone region set; {changed} contact phone(s) re-indexed.")
        )
