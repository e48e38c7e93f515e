"""Users live in their tenant's schema (and operators in ``public``)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models

from accounts.policy import Role


class User(AbstractUser):
    """A person who signs in.

    In a tenant schema the ``role`` says what they may do (see
    ``accounts.policy``). In the public schema every active user is a platform
    operator and ``role`` is unused.
    """

    id = models.BigAutoField(primary_key=True)
    email = models.EmailField(unique=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)

    REQUIRED_FIELDS = ["email"]

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username
