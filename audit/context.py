"""Who is acting, from where: bound per request so services need not pass it."""

from __future__ import annotations

import contextvars
import getpass
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

_request_var: contextvars.ContextVar = contextvars.ContextVar("parley_audit_request", default=None)


@dataclass(frozen=True)
class Actor:
    kind: str
    id: str = ""
    name: str = ""


SYSTEM = Actor(kind="system", id="", name="system")


def cli_actor() -> Actor:
    """Who ran a management command: the operating-system account."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Actor(kind="system", id="", name=f"cli:{name}")


def bind_request(request) -> contextvars.Token:
    return _request_var.set(request)


def unbind_request(token: contextvars.Token) -> None:
    _request_var.reset(token)


def current_request():
    return _request_var.get()


def client_ip(request) -> str | None:
    if settings.PARLEY_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def actor_for_user(user) -> Actor:
    if user is None or not getattr(user, "is_authenticated", False):
        return Actor(kind="anonymous")
    if getattr(user, "is_break_glass", False):
        # A platform operator inside a tenant (tenants.breakglass): never a tenant user,
        # and its id is the operator's in the public schema.
        return Actor(kind="operator", id=str(user.operator_id), name=user.get_username())
    kind = "operator" if getattr(connection, "schema_name", "public") == "public" else "user"
    return Actor(kind=kind, id=str(user.pk), name=user.get_username())


def actor_from_request(request) -> Actor:
    return actor_for_user(getattr(request, "user", None))
