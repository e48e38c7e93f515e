from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from audit.context import cli_actor
from tenants.selectors import tenant_get
from tenants.services import tenant_suspend


class Command(BaseCommand):
    help = "Suspend a tenant: its pages answer 403, its API 403 and its webhooks 410."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--reason", default="", help="shown to operators (300 characters at most)"
        )

    def handle(self, *args, **options):
        try:
            tenant = tenant_suspend(
                tenant=tenant_get(slug=options["slug"]), reason=options["reason"], actor=cli_actor()
            )
        except Http404:
            raise CommandError(f"No tenant with slug {options['slug']!r}.") from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(self.style.SUCCESS(f"Suspended tenant {tenant.slug}."))
