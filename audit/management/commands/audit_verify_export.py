import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.export import verify_export


class Command(BaseCommand):
    help = "Check an audit export against its signed manifest (exit 1 if anything is off)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("manifest")
        parser.add_argument(
            "--public-key", help="PEM file of the platform's public key (default: this platform's)"
        )

    def handle(self, *args, **options):
        try:
            data = Path(options["file"]).read_bytes()
            manifest = json.loads(Path(options["manifest"]).read_text())
            public = Path(options["public_key"]).read_text() if options["public_key"] else None
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read the export or its manifest: {exc}") from exc
        check = verify_export(data=data, manifest=manifest, public_pem=public)
        if not check.ok:
            raise CommandError("Export REJECTED:\n" + "\n".join(f"  - {p}" for p in check.problems))
        self.stdout.write(
            self.style.SUCCESS(
                f"Export OK: {manifest['count']} events #{manifest['first_seq']}…#{manifest['last_seq']}, "
                f"signature by key {manifest['key_id']} valid, SHA-256 matches."
            )
        )
