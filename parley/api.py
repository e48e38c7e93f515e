"""API plumbing shared by every app: JSON errors with a stable ``code``, pagination,
and serializer fields for input that is safe to store (the JSON parser every API
body goes through is ``parley.parsers``)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from parley import validation


class TextField(serializers.CharField):
    """A ``CharField`` that states the storage rule (no NUL, no lone surrogate) itself,
    instead of relying on DRF's defaults staying what they are."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(validation.validate_text)


class IntegerField(serializers.IntegerField):
    """Whole numbers as JSON numbers or ASCII digits: DRF's own accepts ``"١٢"`` as 12
    (``int()`` reads any Unicode digit) and strings of thousands of digits."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            digits = data.strip().removeprefix("-")
            if (
                not digits.isascii()
                or not digits.isdigit()
                or len(digits) > validation.MAX_INT_DIGITS
            ):
                self.fail("invalid")
        return super().to_internal_value(data)


class Pagination(CursorPagination):
    """Keyset pagination: stable under inserts, no OFFSET scans."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"


_CODES = {
    status.HTTP_400_BAD_REQUEST: "invalid",
    status.HTTP_401_UNAUTHORIZED: "not_authenticated",
    status.HTTP_403_FORBIDDEN: "permission_denied",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_429_TOO_MANY_REQUESTS: "throttled",
}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    code = _CODES.get(response.status_code, "error")
    if isinstance(exc, exceptions.APIException):
        detail_codes = exc.get_codes()
        if isinstance(detail_codes, str):
            code = detail_codes
    if isinstance(data, dict) and "detail" in data:
        body = {"code": code, "detail": data["detail"]}
    else:
        body = {"code": code, "detail": "The request is invalid.", "errors": data}
    return Response(
        body,
        status=response.status_code,
        headers=getattr(response, "headers", None)
        and {k: v for k, v in response.headers.items() if k in ("WWW-Authenticate", "Retry-After")},
    )
