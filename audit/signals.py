"""Events recorded from framework signals: sign-in, sign-out, user changes.

User changes are caught at the model (post save, against the previous values
``accounts.signals`` reads before the save) so that no code path can change a
user or a role without its event; they run inside the saving transaction.
"""

from __future__ import annotations

import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.signals import got_request_exception
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.signals import WATCHED_FIELDS
from audit.context import Actor, actor_for_user
from audit.models import Outcome
from audit.services import record, record_per_source
from parley import faults

User = get_user_model()
_TRACKED = tuple(f for f in WATCHED_FIELDS if f != "password")


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    record(
        "auth.login.succeeded",
        actor=actor_for_user(user),
        target_type="user",
        target_id=user.pk,
        request=request,
    )


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    record(
        "auth.login.failed",
        outcome=Outcome.FAILED,
        actor=Actor(kind="anonymous", name=username),
        target_type="user",
        details={"username": username},
        request=request,
    )


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        record(
            "auth.logout",
            actor=actor_for_user(user),
            target_type="user",
            target_id=user.pk,
            request=request,
        )


@receiver(post_save, sender=User)
def _record_user_change(sender, instance, created, raw=False, update_fields=None, **kwargs):
    if raw:
        return
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    target = {"target_type": "user", "target_id": instance.pk}
    if created:
        record(
            "user.created",
            details={
                "username": instance.username,
                "role": instance.role,
                "active": instance.is_active,
            },
            **target,
        )
        return
    before = getattr(instance, "_previous", None) or {}
    changed = [f for f in _TRACKED if before.get(f) != getattr(instance, f)]
    if "role" in changed:
        record(
            "user.role_changed", details={"from": before.get("role"), "to": instance.role}, **target
        )
    if "is_active" in changed:
        record("user.deactivated" if not instance.is_active else "user.reactivated", **target)
    other = [f for f in changed if f not in ("role", "is_active")]
    if other:
        record("user.updated", details={"fields": other}, **target)
    if before and before.get("password") != instance.password:
        record("user.password_set", **target)


@receiver(got_request_exception)
def _unhandled_error(sender, request=None, **kwargs):
    """A request that ends in a 500: which one (id, method, path, error class), never its
    body, query string or the error's message (either may carry personal data).

    Django sends this after the request's own transaction rolled back, so the event
    is written in a transaction of its own, bounded per address and minute like
    bad tokens (a client that found a failing request can repeat it at will).
    """
    error = sys.exc_info()[1]
    if request is None or faults.unavailable_service(error) is not None:
        # An outage is answered 503 (parley.middleware), not a failure of ours, and
        # the chain it would be written to may be the service that is down.
        return
    record_per_source(
        "error.unhandled",
        request=request,
        outcome=Outcome.FAILED,
        details={"error": type(error).__name__ if error is not None else ""},
    )
