"""Reads of users, scoped to the current tenant schema by the connection."""

from __future__ import annotations

from django.contrib.auth import get_user_model


def user_list():
    return (
        get_user_model()
        .objects.order_by("username")
        .only(
            "id", "username", "email", "first_name", "last_name", "role", "is_active", "last_login"
        )
    )
