from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.context import cli_actor
from tenants.services import OwnerRoleRequiredError, tenant_create


def format_validation_error(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        lines = []
        for field, errors in exc.error_dict.items():
            for error in errors:
                lines.extend(f"  {field}: {message}" for message in error.messages)
        return "\n".join(lines)
    return "\n".join(f"  {message}" for message in exc.messages)


class Command(BaseCommand):
    help = "Create a tenant: its schema (cloned from the template), its domain and its owner."

    def add_arguments(self, parser):
        parser.add_argument(
            "--slug", required=True, help="3-40 lowercase letters, digits and hyphens"
        )
        parser.add_argument("--name", required=True, help="display name of the business")
        parser.add_argument("--domain", required=True, help="host name, e.g. acme.localhost")
        parser.add_argument(
            "--owner-email", required=True, help="e-mail of the tenant's first owner"
        )

    def handle(self, *args, **options):
        try:
            result = tenant_create(
                slug=options["slug"],
                name=options["name"],
                domain=options["domain"],
                owner_email=options["owner_email"],
                actor=cli_actor(),
            )
        except ValidationError as exc:
            raise CommandError("Tenant not created:\n" + format_validation_error(exc)) from exc
        except OwnerRoleRequiredError as exc:
            raise CommandError(str(exc)) from exc
        tenant = result.tenant
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.slug} ({tenant.name})"))
        self.stdout.write(f"  schema:  {tenant.schema_name} (cloned in {result.seconds:.2f}s)")
        self.stdout.write(f"  domain:  {result.domain}")
        self.stdout.write(f"  owner:   {result.owner_email}")
        if result.invite_url:
            self.stdout.write(f"  invite:  {result.invite_url}")
            self.stdout.write(
                "           (one-time link for the owner to set a password; treat it as a secret)"
            )
