"""Reactions to user changes: revocation epoch upkeep and the audit events of user changes.

User changes are caught at the model (post save, against the previous values read
before the save) so that no code path can change a user or a role without its
event; they run inside the saving transaction.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from accounts import revocation
from accounts.tokens import snapshot_forget
from audit.services import record

User = get_user_model()
_ENDS_SESSIONS = ("role", "is_active", "password")


@receiver(user_logged_in)
def _start_session(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        revocation.remember(request, user)


# What a save may change that someone reacts to (audit events, ended sessions).
WATCHED_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "role",
    "is_active",
    "is_staff",
    "is_superuser",
    "password",
)


@receiver(pre_save, sender=User)
def _note_previous(sender, instance, raw=False, **kwargs):
    """One read of the stored row before a save, as ``instance._previous`` (None when new)."""
    instance._previous = (
        None
        if raw or instance.pk is None
        else User.objects.filter(pk=instance.pk).values(*WATCHED_FIELDS).first()
    )


@receiver(post_save, sender=User)
def _forget_token_snapshot(sender, instance, raw=False, **kwargs):
    """API requests read a cached copy of the user row; any save drops it (now and after commit)."""
    user_id = instance.pk
    snapshot_forget(user_id)
    transaction.on_commit(lambda: snapshot_forget(user_id))


@receiver(post_save, sender=User)
def _end_sessions_on_change(sender, instance, created, raw=False, **kwargs):
    before = getattr(instance, "_previous", None)
    if raw or created or not before:
        return
    if any(before[f] != getattr(instance, f) for f in _ENDS_SESSIONS):
        user_id = instance.pk
        transaction.on_commit(lambda: revocation.bump(user_id))


_TRACKED = tuple(f for f in WATCHED_FIELDS if f != "password")


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
