"""State changes of tenants. Reads live in ``tenants.selectors``.

Creating a schema needs the database **owner** role. The web process runs as
the app role, so the console only *requests* a tenant (:func:`tenant_request`)
and the provisioning worker, started with ``PARLEY_DB_ROLE=owner``, does the
clone (:func:`tenant_provision`). The CLI runs both steps in one transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.clone import CloneSchema
from django_tenants.utils import schema_exists, tenant_context

from accounts.policy import Role
from accounts.services import user_activation_url
from audit.context import Actor
from audit.services import record
from parley.dbroles import grant_app_access
from parley.keyring.keys import destroy, ensure_keys

# Module imports both ways (tenants.tasks calls these services): names are read at call time.
from tenants import tasks, validation
from tenants.models import ChannelRoute, Domain, Tenant


class OwnerRoleRequiredError(RuntimeError):
    """Schema DDL attempted from a process that connects as the app role."""


@dataclass(frozen=True)
class TenantSpec:
    slug: str
    name: str
    domain: str
    owner_email: str


@dataclass(frozen=True)
class ProvisionResult:
    tenant: Tenant
    domain: str
    owner_email: str
    owner_created: bool
    invite_url: str | None
    seconds: float


def tenant_validate(*, slug: str, name: str, domain: str, owner_email: str) -> TenantSpec:
    """Check every input and every uniqueness rule; raise ValidationError with all problems."""
    errors: dict[str, list[ValidationError]] = {}
    cleaned: dict[str, str] = {}
    for field, cleaner, value in (
        ("slug", validation.clean_slug, slug),
        ("name", validation.clean_name, name),
        ("domain", validation.clean_domain, domain),
        ("owner_email", validation.clean_email, owner_email),
    ):
        try:
            cleaned[field] = cleaner(value)
        except ValidationError as exc:
            errors.setdefault(field, []).append(exc)
    if "slug" in cleaned:
        schema = validation.schema_name_for(cleaned["slug"])
        if (
            Tenant.objects.filter(slug=cleaned["slug"]).exists()
            or Tenant.objects.filter(schema_name=schema).exists()
        ):
            errors.setdefault("slug", []).append(
                ValidationError(
                    "The slug %(slug)r is taken.",
                    code="slug_taken",
                    params={"slug": cleaned["slug"]},
                )
            )
    if "domain" in cleaned and Domain.objects.filter(domain=cleaned["domain"]).exists():
        errors.setdefault("domain", []).append(
            ValidationError(
                "The domain %(domain)r is taken.",
                code="domain_taken",
                params={"domain": cleaned["domain"]},
            )
        )
    if errors:
        raise ValidationError(errors)
    return TenantSpec(**cleaned)


def _require_owner_role() -> None:
    if settings.PARLEY_DB_ROLE != "owner":
        raise OwnerRoleRequiredError(
            "Creating a tenant schema needs the database owner role: run this with "
            "PARLEY_DB_ROLE=owner (the provisioning worker and `make manage-owner` do)."
        )


def tenant_request(
    *, slug: str, name: str, domain: str, owner_email: str, actor: Actor | None = None
) -> Tenant:
    """Record a new tenant (status ``provisioning``); the worker creates its schema.

    Runs as the app role: it only inserts rows. The provisioning task is
    enqueued once the transaction commits.
    """
    spec = tenant_validate(slug=slug, name=name, domain=domain, owner_email=owner_email)
    with transaction.atomic():
        tenant = _tenant_rows_create(spec)
        tenant_id = tenant.pk
        record(
            "tenant.requested",
            actor=actor,
            target_type="tenant",
            target_id=spec.slug,
            details={"domain": spec.domain},
        )
        transaction.on_commit(lambda: tasks.tenant_provision.delay(tenant_id))
    return tenant


def _tenant_rows_create(spec: TenantSpec) -> Tenant:
    tenant = Tenant(
        slug=spec.slug,
        name=spec.name,
        schema_name=validation.schema_name_for(spec.slug),
        owner_email=spec.owner_email,
        status=Tenant.Status.PROVISIONING,
    )
    tenant.save()
    Domain.objects.create(domain=spec.domain, tenant=tenant, is_primary=True)
    return tenant


def tenant_create(
    *, slug: str, name: str, domain: str, owner_email: str, actor: Actor | None = None
) -> ProvisionResult:
    """Validate, record and provision a tenant in one transaction (owner role).

    Either everything exists afterwards (rows, schema, owner) or nothing does.
    """
    _require_owner_role()
    spec = tenant_validate(slug=slug, name=name, domain=domain, owner_email=owner_email)
    with transaction.atomic():
        tenant = _tenant_rows_create(spec)
        return tenant_provision(tenant=tenant, actor=actor)


def tenant_provision(*, tenant: Tenant, actor: Actor | None = None) -> ProvisionResult:
    """Create what is still missing of a requested tenant: schema, owner, status.

    Idempotent: a retry after a crash finds the schema (or the owner) already
    there and carries on from that point.
    """
    _require_owner_role()
    started = time.perf_counter()
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if tenant.is_template or tenant.is_public:
            raise ValidationError("The platform and template schemas are not provisioned.")
        connection.set_schema_to_public()
        if not schema_exists(tenant.schema_name):
            clone_from_template(tenant.schema_name)

        ensure_keys(tenant.schema_name)
        owner_created, invite_url = _ensure_owner(tenant)
        seconds = time.perf_counter() - started
        if tenant.status in (Tenant.Status.PROVISIONING, Tenant.Status.FAILED):
            tenant.status = Tenant.Status.ACTIVE
            tenant.status_reason = ""
            tenant.status_changed_at = timezone.now()
            tenant.provisioned_at = timezone.now()
            tenant.provisioning_seconds = seconds
            tenant.save(
                update_fields=[
                    "status",
                    "status_reason",
                    "status_changed_at",
                    "provisioned_at",
                    "provisioning_seconds",
                ]
            )
            record(
                "tenant.created",
                actor=actor,
                target_type="tenant",
                target_id=tenant.slug,
                details={
                    "schema": tenant.schema_name,
                    "domain": str(tenant.get_primary_domain() or ""),
                },
            )
    domain = tenant.get_primary_domain()
    return ProvisionResult(
        tenant=tenant,
        domain=domain.domain if domain else "",
        owner_email=tenant.owner_email,
        owner_created=owner_created,
        invite_url=invite_url,
        seconds=seconds,
    )


def tenant_mark_failed(*, tenant_id: int, reason: str) -> None:
    with transaction.atomic():
        changed = Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.PROVISIONING).update(
            status=Tenant.Status.FAILED,
            status_reason=reason[:300],
            status_changed_at=timezone.now(),
        )
        if changed:
            record(
                "tenant.provisioning_failed",
                outcome="failed",
                target_type="tenant",
                target_id=tenant_id,
                details={"reason": reason[:300]},
            )


def clone_from_template(schema_name: str) -> None:
    """Copy the migrated template schema (structure and its few rows).

    The template's ``django_migrations`` rows come along, so the clone is
    already at the current migration state: no per-tenant migrate run.
    """
    _require_owner_role()
    template = settings.TENANT_BASE_SCHEMA
    if not schema_exists(template):
        raise RuntimeError(
            f"The template schema {template!r} does not exist: run `manage.py parley_migrate` first."
        )
    if not _clone_function_exists():
        # parley_migrate installs it at deploy; this is the fallback for a
        # database migrated by plain migrate_schemas.
        CloneSchema()._create_clone_schema_function()
    with connection.cursor() as cursor:
        cursor.execute("SELECT public.clone_schema(%s, %s, 'DATA')", [template, schema_name])

    with connection.cursor() as cursor:
        grant_app_access(cursor, schema=schema_name, app_role=settings.PARLEY_DB_APP_ROLE)
    connection.set_schema_to_public()


def _clone_function_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_regprocedure('public.clone_schema(text, text, public.cloneparms[])') IS NOT NULL"
        )
        return cursor.fetchone()[0]


def _ensure_owner(tenant: Tenant) -> tuple[bool, str | None]:
    User = get_user_model()
    with tenant_context(tenant):
        existing = User.objects.filter(email__iexact=tenant.owner_email).first()
        if existing is not None:
            return False, None
        owner = User(username=tenant.owner_email, email=tenant.owner_email, role=Role.OWNER)
        owner.set_unusable_password()
        owner.save()
        return True, user_activation_url(tenant=tenant, user=owner)


def _transition(
    tenant: Tenant,
    *,
    from_statuses: tuple[str, ...],
    action: str,
    actor: Actor | None,
    details: dict | None = None,
    **fields,
) -> Tenant:
    """Move a tenant's status with a conditional UPDATE (only from ``from_statuses``)
    and record ``action`` in the same transaction; a concurrent change is a conflict."""
    with transaction.atomic():
        changed = Tenant.objects.filter(pk=tenant.pk, status__in=from_statuses).update(
            status_changed_at=timezone.now(), **fields
        )
        if changed != 1:
            raise ValidationError(
                "The tenant changed meanwhile; reload and try again.", code="conflict"
            )
        record(action, actor=actor, target_type="tenant", target_id=tenant.slug, details=details)
    tenant.refresh_from_db()
    return tenant


def tenant_suspend(*, tenant: Tenant, reason: str = "", actor: Actor | None = None) -> Tenant:
    if tenant.is_public or tenant.is_template:
        raise ValidationError("The platform itself cannot be suspended.", code="not_a_tenant")
    if tenant.status != Tenant.Status.ACTIVE:
        raise ValidationError(
            "Only an active tenant can be suspended; %(slug)s is %(status)s.",
            code="not_active",
            params={"slug": tenant.slug, "status": tenant.get_status_display().lower()},
        )
    reason = " ".join(reason.split())[:300]
    return _transition(
        tenant,
        from_statuses=(Tenant.Status.ACTIVE,),
        action="tenant.suspended",
        actor=actor,
        details={"reason": reason},
        status=Tenant.Status.SUSPENDED,
        status_reason=reason,
    )


def tenant_reactivate(*, tenant: Tenant, actor: Actor | None = None) -> Tenant:
    if tenant.status != Tenant.Status.SUSPENDED:
        raise ValidationError(
            "Only a suspended tenant can be reactivated; %(slug)s is %(status)s.",
            code="not_suspended",
            params={"slug": tenant.slug, "status": tenant.get_status_display().lower()},
        )
    return _transition(
        tenant,
        from_statuses=(Tenant.Status.SUSPENDED,),
        action="tenant.reactivated",
        actor=actor,
        status=Tenant.Status.ACTIVE,
        status_reason="",
    )


def tenant_offboard(
    *, tenant: Tenant, retention_days: int | None = None, actor: Actor | None = None
) -> Tenant:
    """Close a tenant now; its schema and keys are destroyed when the retention
    window ends (``tenant_offboard_execute``). Nothing is exported."""
    if tenant.is_public or tenant.is_template:
        raise ValidationError("The platform itself cannot be offboarded.", code="not_a_tenant")
    if tenant.status in (Tenant.Status.OFFBOARDING, Tenant.Status.OFFBOARDED):
        raise ValidationError(
            "%(slug)s is already being offboarded.",
            code="offboarding",
            params={"slug": tenant.slug},
        )
    days = settings.PARLEY_OFFBOARD_RETENTION_DAYS if retention_days is None else retention_days
    if days < 0:
        raise ValidationError("The retention window cannot be negative.", code="invalid_retention")

    return _transition(
        tenant,
        from_statuses=(
            Tenant.Status.ACTIVE,
            Tenant.Status.SUSPENDED,
            Tenant.Status.PROVISIONING,
            Tenant.Status.FAILED,
        ),
        action="tenant.offboarding_scheduled",
        actor=actor,
        details={"retention_days": days},
        status=Tenant.Status.OFFBOARDING,
        status_reason=f"offboarding: data destroyed after {days} day(s)",
        offboard_after=timezone.now() + timedelta(days=days),
    )


def tenant_offboard_execute(*, tenant: Tenant, actor: Actor | None = None) -> Tenant:
    """Drop the schema and destroy the tenant's keys (crypto-shredding). Owner role.

    Any copy of the schema made before (a backup) holds only ciphertext whose
    keys no longer exist anywhere.
    """
    _require_owner_role()
    if tenant.status != Tenant.Status.OFFBOARDING:
        raise ValidationError(
            "Only a tenant being offboarded can be destroyed.", code="not_offboarding"
        )
    with transaction.atomic():
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
        destroyed = destroy(tenant.schema_name)
        Domain.objects.filter(tenant=tenant).delete()
        Tenant.objects.filter(pk=tenant.pk).update(
            status=Tenant.Status.OFFBOARDED,
            offboarded_at=timezone.now(),
            status_changed_at=timezone.now(),
            status_reason="offboarded: schema dropped, keys destroyed",
        )
        record(
            "tenant.offboarded",
            actor=actor,
            target_type="tenant",
            target_id=tenant.slug,
            details={"schema": tenant.schema_name, "keys_destroyed": destroyed},
        )
    tenant.refresh_from_db()
    return tenant


# --- the shared Meta app's routing table ----------------------------------------------------------


class ChannelRouteTaken(ValidationError):
    """The account is already routed to a channel (here or in another workspace)."""


def channel_route_claim(*, kind: str, routing_id: str, schema_name: str, public_id: str) -> None:
    """Route the shared app's events for ``(kind, routing_id)`` to a channel of
    ``schema_name``. Call inside the channel's transaction (connectors does, and
    audits it in the tenant's trail); a taken id raises :class:`ChannelRouteTaken`."""
    tenant = Tenant.objects.filter(schema_name=schema_name).first()
    if tenant is None or tenant.schema_name == "public":
        raise ValidationError({"tenant": "Channels route to a business workspace only."})
    if ChannelRoute.objects.filter(kind=kind, routing_id=routing_id).exists():
        raise ChannelRouteTaken(
            {"routing_id": "This account is already connected to a channel on the shared app."}
        )
    try:
        with transaction.atomic():
            ChannelRoute.objects.create(
                kind=kind, routing_id=routing_id, tenant=tenant, channel_public_id=public_id
            )
    except IntegrityError:
        # Claimed by a concurrent request: same answer as above.
        raise ChannelRouteTaken(
            {"routing_id": "This account is already connected to a channel on the shared app."}
        ) from None


def channel_route_set_enabled(*, schema_name: str, public_id: str, enabled: bool) -> int:
    """Follow a channel's pause/resume: a paused route drops its events at the door."""
    return ChannelRoute.objects.filter(
        tenant__schema_name=schema_name, channel_public_id=public_id
    ).update(enabled=enabled)


def channel_route_release(*, schema_name: str, public_id: str) -> int:
    """Forget the routes of a deleted channel (its account may be connected again)."""
    deleted, _ = ChannelRoute.objects.filter(
        tenant__schema_name=schema_name, channel_public_id=public_id
    ).delete()
    return deleted
