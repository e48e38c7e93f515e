import json
from datetime import UTC, date, datetime, time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.dateparse import parse_datetime
from django_tenants.utils import tenant_context

from audit.context import cli_actor
from audit.export import FORMATS, write_export
from audit.services import record, seal
from tenants.models import Tenant


def _when(value: str | None, name: str):
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        try:
            parsed = datetime.combine(date.fromisoformat(value), time.min)
        except ValueError:
            raise CommandError(f"--{name} {value!r} is not an ISO date or date-time.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


class Command(BaseCommand):
    help = "Export a tenant's audit trail (JSON Lines or CSV) with a signed manifest (FILE.manifest.json)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--since", help="ISO date or date-time (UTC if no zone), inclusive")
        parser.add_argument("--until", help="ISO date or date-time (UTC if no zone), exclusive")
        parser.add_argument("--format", choices=FORMATS, default="jsonl")
        parser.add_argument(
            "--out", required=True, help="file to write; the manifest goes to OUT.manifest.json"
        )

    def handle(self, *args, **options):
        tenant = Tenant.objects.businesses().filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        since, until = _when(options["since"], "since"), _when(options["until"], "until")
        if since and until and since >= until:
            raise CommandError("--since must be before --until.")
        out = Path(options["out"])
        manifest_path = out.with_name(out.name + ".manifest.json")
        with tenant_context(tenant), transaction.atomic():
            seal()  # everything committed so far belongs in the export
            with out.open("wb") as handle:
                manifest = write_export(
                    out=handle,
                    fmt=options["format"],
                    schema=tenant.schema_name,
                    tenant=tenant.slug,
                    since=since,
                    until=until,
                )
            record(
                "audit.exported",
                actor=cli_actor(),
                target_type="audit",
                target_id=tenant.slug,
                details={
                    "format": options["format"],
                    "count": manifest["count"],
                    "sha256": manifest["sha256"],
                },
            )
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
        self.stdout.write(
            self.style.SUCCESS(
                f"Exported {manifest['count']} events to {out} (manifest {manifest_path})."
            )
        )
