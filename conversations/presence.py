"""Which agents are online: a short-lived key per user in Redis, refreshed
while their inbox is open (it polls every few seconds)."""

from __future__ import annotations

from django.core.cache import cache

TTL = 90


def _key(user_id) -> str:
    return f"presence:{user_id}"


def touch(user) -> None:
    if getattr(user, "pk", None):
        cache.set(_key(user.pk), 1, TTL)


def online_ids(user_ids) -> list[int]:
    keys = {_key(uid): uid for uid in user_ids}
    found = cache.get_many(list(keys))
    return [keys[k] for k in found]
