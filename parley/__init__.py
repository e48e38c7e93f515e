"""Parley's Django project package (not ``platform``: that would shadow the stdlib)."""

from parley.celery import app as celery_app

__all__ = ["celery_app"]
