from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.policy import Perm, Role, role_has


def render_policy_markdown() -> str:
    roles = list(Role)
    lines = [
        "# Roles and permissions",
        "",
        "Generated from `accounts/policy.py` by `manage.py policy_table --write` — do not edit by hand.",
        "",
        "| permission | " + " | ".join(r.value for r in roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for perm in Perm:
        cells = ["yes" if role_has(r.value, perm.value) else "–" for r in roles]
        lines.append(f"| `{perm.value}` {perm.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


class Command(BaseCommand):
    help = "Print (or write to docs/roles.md) the role → permission table from accounts/policy.py."

    def add_arguments(self, parser):
        parser.add_argument("--write", action="store_true")

    def handle(self, *args, **options):
        text = render_policy_markdown()
        if options["write"]:
            (settings.BASE_DIR / "docs" / "roles.md").write_text(text)
            self.stdout.write("docs/roles.md written")
        else:
            self.stdout.write(text, ending="")
