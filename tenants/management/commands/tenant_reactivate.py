from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from audit.context import cli_actor
from tenants.selectors import tenant_get
from tenants.services import tenant_reactivate


class Command(BaseCommand):
    help = "Reactivate a suspended tenant."

    def add_arguments(self, parser):
        parser.add_argument("slug")

    def handle(self, *args, **options):
        try:
            tenant = tenant_reactivate(tenant=tenant_get(slug=options["slug"]), actor=cli_actor())
        except Http404:
            raise CommandError(f"No tenant with slug {options['slug']!r}.") from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(self.style.SUCCESS(f"Reactivated tenant {tenant.slug}."))
