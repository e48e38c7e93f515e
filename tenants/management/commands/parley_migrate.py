from django.core.management.base import BaseCommand, CommandError

from tenants.migrating import migrate_all


class Command(BaseCommand):
    help = (
        "Migrate the public schema, the tenant template and every tenant that is behind "
        "(owner role: PARLEY_DB_ROLE=owner). Idempotent; a no-op run only reads."
    )

    def handle(self, *args, **options):
        try:
            result = migrate_all(log=self.stdout.write, verbosity=max(0, options["verbosity"] - 1))
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Migrations done: public {'migrated' if result['public'] else 'up to date'}, "
                f"template {'migrated' if result['template'] else 'up to date'}, "
                f"{result['tenants_migrated']} of {result['tenants_checked']} tenant schemas migrated."
            )
        )
