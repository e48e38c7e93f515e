from django.apps import AppConfig


class ParleyConfig(AppConfig):
    name = "parley"
    verbose_name = "Parley platform"

    def ready(self) -> None:
        # django-tenants' migrate_schemas and django-pgtrigger's makemigrations
        # use different autodetectors; Django then reports commands.E001. Give
        # migrate_schemas the one makemigrations uses (pgtrigger's).
        from django.core.management.commands.makemigrations import Command as MakeMigrations
        from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand

        MigrateSchemasCommand.autodetector = MakeMigrations.autodetector

        # checks registers the system checks; heap connects Celery's worker_process_init.
        from parley import checks, heap  # noqa: F401
