"""API plumbing shared by every app: JSON errors with a stable ``code``, pagination,
and serializer fields for input that is safe to store (the JSON parser every API
body goes through is ``parley.parsers``)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig
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


class StringField(TextField):
    """A JSON string only: DRF's CharField turns 5 into "5", and a name, an id or a
    secret given as a number is a mistake to report, not to guess."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false only (DRF's own also takes "yes", 1, "on" …)."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=str(data)[:20])
        return data


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


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The request body is larger than this API accepts."


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
    elif isinstance(exc, RequestDataTooBig):
        # Past DATA_UPLOAD_MAX_MEMORY_SIZE: Django would answer an HTML 400 (or a 500
        # under the test client); the API answers JSON like every other refusal.
        exc = BodyTooLarge()
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


# --- OpenAPI: the errors every operation can answer --------------------------------------------

_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_ERROR_DESCRIPTIONS = {
    "400": "The request is invalid (`invalid`, with `errors` per field).",
    "401": "No valid credentials (`not_authenticated`, `token_invalid`, `token_expired` …); "
    "see `WWW-Authenticate`.",
    "403": "Signed in but not allowed (`permission_denied`), or a fresh one-time code is "
    "needed (`step_up_required`).",
    "404": "Not found, or not visible to this caller (`not_found`).",
    "413": "The body is larger than the server accepts (`too_large`).",
    "415": "The body is not JSON (`unsupported_media_type`).",
    "429": "Too many requests (`throttled`); see `Retry-After`.",
}


def document_error_responses(result, generator, request, public):
    """drf-spectacular post-processing hook: add the JSON errors of ``exception_handler``
    that an operation can answer but does not list, so clients (and the schemathesis
    run in the suite) can rely on every documented status and body."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Error",
        {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "detail": {"type": "string"},
                "errors": {"description": "Per field, for `invalid`."},
            },
            "required": ["code", "detail"],
        },
    )
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            params = operation.get("parameters", [])
            for param in params:
                schema = param.get("schema", {})
                if param.get("in") == "path" and schema.get("type") == "integer":
                    schema.setdefault("minimum", 0)  # `<int:…>` matches digits only
            codes = ["429"]
            if "requestBody" in operation or any(p.get("in") == "query" for p in params):
                codes.append("400")
            if "requestBody" in operation:
                codes += ["413", "415"]
            if operation.get("security", [{}]) != [{}] and operation.get("security") != []:
                codes += ["401", "403"]
            if any(p.get("in") == "path" or p.get("name") == "cursor" for p in params):
                codes.append("404")  # an unknown id, or a cursor that does not decode
            for code in sorted(codes):
                operation["responses"].setdefault(
                    code,
                    {
                        "description": _ERROR_DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": _ERROR_REF}},
                    },
                )
    return result
