"""Seed the demo: a platform operator and tenants with one user per role (idempotent)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import schema_context, tenant_context

from accounts.policy import Role
from parley import devstack
from tenants.models import Tenant
from tenants.services import tenant_base_url, tenant_create

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
        with schema_context("public"):
            operator = User.objects.filter(username="operator").first()
            if operator is None:
                operator = User(username="operator", email="operator@parley.test", is_staff=True)
                operator.set_password(DEMO_PASSWORD)
                operator.save()
            codes: list[str] = []
            self._demo_codes(operator, "operator", codes)
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
                    self._demo_codes(user, f"{slug}: {email}", codes)
            lines.append(
                f"Tenant {slug:<8}   {tenant_base_url(tenant)}/  <role>@{slug}.test / {DEMO_PASSWORD}"
                f"  (roles: {', '.join(r.value for r in Role)})"
            )
        path = devstack.state_dir() / "demo-mfa-codes.txt"
        path.write_text("\n".join(codes) + "\n")
        path.chmod(0o600)
        lines.append(
            "Two-factor: every demo login has one-time backup codes in "
            f"{devstack.state_dir() / 'demo-mfa-codes.txt'} (each works once); "
            "set up an authenticator app on the 2FA page, or sign in as a new invitee to see enrolment."
        )
        self.stdout.write("\n".join(lines))

    @staticmethod
    def _demo_codes(user, label: str, out: list[str]) -> None:
        """Ten backup codes per demo login, created once; lists those still unused."""
        from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

        device = StaticDevice.objects.filter(user=user, name="demo").first()
        if device is None:
            device = StaticDevice.objects.create(user=user, name="demo", confirmed=True)
            device.token_set.bulk_create(
                [StaticToken(device=device, token=StaticToken.random_token()) for _ in range(10)]
            )
        tokens = list(device.token_set.values_list("token", flat=True))
        out.append(f"{label}: {' '.join(tokens) if tokens else '(all used)'}")
