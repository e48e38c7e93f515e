"""Text, numbers and JSON that go into the database: one set of checks for every entry point.

PostgreSQL refuses a NUL in ``text`` and ``\\u0000`` in ``jsonb`` (DataError),
UTF-8 cannot encode a lone surrogate (``"\\ud800"``, which ``json.loads``
happily returns), ``int("²")`` raises although ``"²".isdigit()`` is true,
``int()`` refuses strings of more than 4,300 digits, and a number past 64 bits
fits no column. Each of those used to reach the database or the encryption
layer and end as a 500. Here they are refused up front as a Django
``ValidationError`` keyed by the field (or JSON path) at fault, which the
webhook and the API answer as 400 JSON with code ``invalid``.

Used by the webhook parser (``connectors.webhooks``, ``connectors.channels``),
the API's JSON parser and serializer fields (``parley.api``) and the services
that store messages (``conversations.services``), so a new input path gets the
checks by using any of them.
"""

from __future__ import annotations

import json
import math
import re

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

MAX_JSON_DEPTH = 32  # nesting of objects and arrays in one document
MAX_INT_DIGITS = 19  # 2**63 - 1 has 19 digits: a bigint column holds nothing longer
INT64_MAX = 2**63 - 1
MAX_PATH = 200  # characters of a JSON path quoted back in an error

_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONSyntaxError(ValueError):
    """The bytes are not one UTF-8 JSON document (an encoding or syntax error)."""


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (None when it can)."""
    if "\x00" in value:
        return "Contains a NUL character."
    if _SURROGATE.search(value):
        return "Contains a lone surrogate (not valid Unicode)."
    return None


@deconstructible
class TextValidator:
    """A field validator (Django forms and models, DRF): no NUL, no lone surrogate."""

    code = "invalid"

    def __call__(self, value) -> None:
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise ValidationError(problem, code=self.code)

    def __eq__(self, other) -> bool:
        return isinstance(other, TextValidator)


validate_text = TextValidator()


def clean_text(
    value,
    *,
    field: str,
    label: str,
    max_length: int,
    required: bool = False,
    ints: bool = False,
) -> str:
    """``value`` as stripped text of at most ``max_length`` characters, or ValidationError.

    None counts as empty. ``ints`` lets a JSON integer stand for an identifier
    (``"id": 42``); anything else that is not a string is refused.
    """
    if value is None:
        value = ""
    if ints and isinstance(value, int) and not isinstance(value, bool):
        value = str(value) if abs(value) <= INT64_MAX else None
    if not isinstance(value, str):
        raise ValidationError({field: f"{label} is a string."}, code="invalid")
    problem = text_problem(value)
    if problem:
        raise ValidationError(
            {field: f"{label}: {problem[0].lower()}{problem[1:]}"}, code="invalid"
        )
    value = value.strip()
    if required and not value:
        raise ValidationError({field: f"{label} is required."}, code="invalid")
    if len(value) > max_length:
        raise ValidationError(
            {field: f"{label} has at most {max_length} characters."}, code="invalid"
        )
    return value


def ascii_int(text: str) -> int | None:
    """``text`` as a non-negative int when it is 1 to 19 ASCII digits, else None.

    For query strings and form fields that only want "a number or nothing":
    ``"²".isdigit()`` is true but ``int("²")`` raises.
    """
    text = text.strip()
    if text and len(text) <= MAX_INT_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


def parse_int(value, *, field: str, label: str, minimum: int = 1, maximum: int = INT64_MAX) -> int:
    """An integer given as a JSON number or a string of ASCII digits, within bounds.

    ``"²"`` and ``"١٢"`` are digits to ``str.isdigit`` and ``int`` but not to us;
    long strings are refused before ``int()`` sees them.
    """
    message = f"{label} is a whole number from {minimum} to {maximum}."
    if isinstance(value, str):
        value = ascii_int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise ValidationError({field: message}, code="invalid")
    return value


def _reject_constant(name: str):
    raise JSONSyntaxError(f"{name} is not JSON.")


def _bounded_int(digits: str) -> int:
    # Refused before int() runs: int() of thousands of digits is slow, and past
    # 4,300 it raises. A 64-bit number has at most 19 digits (plus a sign).
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValidationError({"body": "A number does not fit 64 bits."}, code="invalid")
    return int(digits)


def json_loads(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH):
    """Parse one JSON document for storing: JSONSyntaxError or ValidationError, never more.

    Strict UTF-8 and no ``NaN``/``Infinity`` (else JSONSyntaxError); numbers of
    at most 19 digits, then :func:`document_check` over the result (else
    ValidationError).
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        document = json.loads(text, parse_constant=_reject_constant, parse_int=_bounded_int)
    except JSONSyntaxError:
        raise
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError and JSONDecodeError are ValueErrors; very deep
        # nesting exhausts the parser's recursion before our depth check.
        raise JSONSyntaxError("The body is not valid UTF-8 JSON.") from exc
    document_check(document, max_depth=max_depth)
    return document


def document_check(document, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse a decoded JSON value that cannot be stored as it is.

    Every key and string is checked with :func:`text_problem`; integers must
    fit 64 bits, floats must be finite, nesting at most ``max_depth`` deep.
    The error names an offending path (``contact.name``,
    ``attachments[0].type``). Iterative, so deep input cannot exhaust the stack.
    """
    stack = [(document, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        where = path or "body"
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise ValidationError({where: problem}, code="invalid")
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if abs(value) > INT64_MAX:
                raise ValidationError({where: "The number does not fit 64 bits."}, code="invalid")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValidationError({where: "The number is not finite."}, code="invalid")
        elif isinstance(value, dict | list):
            if depth >= max_depth:
                raise ValidationError(
                    {where: f"Nested more than {max_depth} levels deep."}, code="invalid"
                )
            if isinstance(value, dict):
                for key, item in value.items():
                    key = str(key)
                    problem = text_problem(key)
                    if problem:
                        # Never echo the bad key itself: it may not even encode.
                        raise ValidationError(
                            {where: f"A key: {problem[0].lower()}{problem[1:]}"}, code="invalid"
                        )
                    child = f"{path}.{key}" if path else key
                    stack.append((item, child[:MAX_PATH], depth + 1))
            else:
                for index, item in enumerate(value):
                    stack.append((item, f"{path}[{index}]"[:MAX_PATH], depth + 1))
        else:
            raise ValidationError({where: "Not a JSON value."}, code="invalid")
