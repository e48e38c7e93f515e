"""Seed the demo: a platform operator and tenants with one user per role (idempotent)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context, tenant_context

from accounts import mfa
from accounts.models import BackupCodeDevice
from accounts.policy import Role
from bots.demo import demo_bot_ensure
from connectors.webchat.services import webchat_demo_ensure
from parley import devstack
from parley.base_url import tenant_base_url
from tenants.models import Tenant
from tenants.services import tenant_create

_BASE32 = set("abcdefghijklmnopqrstuvwxyz234567")
DEMO_TENANTS = [
    ("acme", "Acme Inc.", "acme"),
    ("globex", "Globex Corporation", "globex"),
]


class Command(BaseCommand):
    help = "Create the demo operator and tenants (development only; owner role)."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("The demo seed is refused in production.")
        if settings.PARLEY_DB_ROLE != "owner":
            raise CommandError("Run the demo seed with PARLEY_DB_ROLE=owner (it creates schemas).")
        User = get_user_model()
        # Generated into the state folder on the first seed: no password in code.
        DEMO_PASSWORD = devstack.ensure_demo_password()  # noqa: N806
        path = devstack.state_dir() / "demo-mfa-codes.txt"
        # Only digests of the codes are in the database: the previous file is
        # where their text is; the database says which are still unused.
        known = _read_codes(path)
        with schema_context("public"):
            operator = User.objects.filter(username="operator").first()
            if operator is None:
                operator = User(username="operator", email="operator@parley.test", is_staff=True)
                operator.set_password(DEMO_PASSWORD)
                operator.save()
            codes: list[str] = []
            self._demo_codes(operator, "operator", codes, known)
        lines = [
            f"Platform console  http://{settings.PARLEY_BASE_DOMAIN}:{settings.PARLEY_PUBLIC_PORT}/  "
            f"operator / {DEMO_PASSWORD}"
        ]
        for slug, name, host in DEMO_TENANTS:
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                tenant = tenant_create(
                    slug=slug,
                    name=name,
                    domain=f"{host}.{settings.PARLEY_BASE_DOMAIN}",
                    owner_email=f"owner@{slug}.test",
                ).tenant
            with tenant_context(tenant):
                for role in Role:
                    email = f"{role.value}@{slug}.test"
                    user = User.objects.filter(email=email).first()
                    if user is None:
                        user = User(username=email, email=email, role=role.value)
                    if not user.password or not user.has_usable_password():
                        user.set_password(DEMO_PASSWORD)
                    user.role = role.value
                    user.save()
                    self._demo_codes(user, f"{slug}: {email}", codes, known)
                # A web chat on the tenant's demo page (/demo/chat/), answered by agent@.
                owner = User.objects.get(email=f"owner@{slug}.test")
                chat = webchat_demo_ensure(
                    by=owner,
                    origin=tenant_base_url(tenant),
                    members=[User.objects.get(email=f"agent@{slug}.test")],
                )
                # A published bot on that web chat: greets, answers, hands off to agent@.
                demo_bot_ensure(by=owner, inbox=chat.inbox)
            lines.append(
                f"Tenant {slug:<8}   {tenant_base_url(tenant)}/  <role>@{slug}.test / {DEMO_PASSWORD}"
                f"  (roles: {', '.join(r.value for r in Role)})"
            )
        lines.append(
            "Web chat demo     "
            f"{tenant_base_url(Tenant.objects.get(slug='acme'))}/demo/chat/  "
            "(chat as a customer with the demo bot; type agent to be handed to agent@acme.test; "
            "marketer@acme.test edits the bot under Flows)"
        )
        path.write_text("\n".join(codes) + "\n")
        path.chmod(0o600)
        lines.append(
            "Two-factor: every demo login has one-time backup codes in "
            f"{devstack.state_dir() / 'demo-mfa-codes.txt'} (each works once); "
            "set up an authenticator app on the 2FA page, or sign in as a new invitee to see enrolment."
        )
        self.stdout.write("\n".join(lines))

    @staticmethod
    def _demo_codes(user, label: str, out: list[str], known: dict[str, list[str]]) -> None:
        """Ten backup codes per demo login, created once; lists those still unused.

        The database keeps digests only: the text comes from the previous file,
        and the database says which of those codes still work. When the file is
        lost while codes remain, nobody could use them: the demo gets new ones.
        """
        device = BackupCodeDevice.objects.filter(user=user, name="demo").first()
        left = device.codes.count() if device else 0
        unused = mfa.backup_codes_unused(user, known.get(label, []), name="demo")
        if device is None or (left and not unused):
            unused = mfa.backup_codes_create(user, 10, name="demo")
        elif not left:
            out.append(f"{label}: (all used)")
            return
        out.append(f"{label}: {' '.join(unused)}")


def _read_codes(path) -> dict[str, list[str]]:
    """``label: code code …`` lines of an earlier run (missing file: nothing known)."""
    known: dict[str, list[str]] = {}
    if not path.exists():
        return known
    for line in path.read_text().splitlines():
        label, sep, rest = line.rpartition(": ")
        if sep:
            known[label] = [c for c in rest.split() if len(c) == 8 and set(c) <= _BASE32]
    return known
