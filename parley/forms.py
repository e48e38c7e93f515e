"""Form helpers shared by the apps."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def add_validation_error(form, exc: ValidationError) -> None:
    """Show a service's ValidationError on the form: per field where it names one."""
    by_field = exc.error_dict if hasattr(exc, "error_dict") else {"__all__": exc.error_list}
    for field, errors in by_field.items():
        for error in errors:
            form.add_error(field if field in form.fields else None, error)
