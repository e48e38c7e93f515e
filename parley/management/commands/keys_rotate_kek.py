from django.core.management.base import BaseCommand, CommandError

from parley.keyring import keys
from parley.keyring.providers import KeyringError, provider


class Command(BaseCommand):
    help = "Rotate the key-encryption key (vault provider) and re-wrap every tenant key with it."

    def handle(self, *args, **options):
        kek = provider()
        try:
            kek.rotate()
            count = keys.rewrap_all()
        except KeyringError as exc:
            raise CommandError(str(exc)) from exc
        keys.forget_cached()
        self.stdout.write(
            self.style.SUCCESS(f"KEK rotated ({kek.name}); {count} wrapped key(s) re-wrapped.")
        )
