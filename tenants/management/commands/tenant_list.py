import json

from django.core.management.base import BaseCommand

from tenants.selectors import tenant_list


class Command(BaseCommand):
    help = "List tenants with their status and domains."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args, **options):
        tenants = list(tenant_list())
        if options["json"]:
            for t in tenants:
                self.stdout.write(
                    json.dumps(
                        {
                            "slug": t.slug,
                            "name": t.name,
                            "status": t.status,
                            "schema": t.schema_name,
                            "domains": [d.domain for d in t.domains.all()],
                            "created_at": t.created_at.isoformat(),
                        }
                    )
                )
            return
        if not tenants:
            self.stdout.write("No tenants.")
            return
        rows = [("SLUG", "STATUS", "DOMAINS", "SCHEMA", "NAME")]
        rows += [
            (t.slug, t.status, ",".join(d.domain for d in t.domains.all()), t.schema_name, t.name)
            for t in tenants
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            self.stdout.write("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
