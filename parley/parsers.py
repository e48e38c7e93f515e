"""The API's JSON parser (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``).

A module of its own: DRF imports it while building ``APIView``, so it must not
import ``rest_framework.views`` (``parley.api`` does).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, parsers

from audit.models import Outcome
from audit.services import record
from parley import validation


class JSONParser(parsers.JSONParser):
    """Every JSON body of the API, checked by ``parley.validation`` before any view sees it.

    A NUL or lone surrogate anywhere (keys included), a number past 64 bits,
    ``NaN``/``Infinity`` or nesting deeper than 32 levels is a 400 (``invalid``,
    with the JSON path at fault), so no serializer field, ``DictField`` or
    ``JSONField`` can carry one to the database. Broken JSON is ``parse_error``.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError:
            raise exceptions.ParseError(f"The body is not valid {encoding}.") from None
        try:
            return validation.json_loads(text)
        except validation.JSONSyntaxError as exc:
            raise exceptions.ParseError(str(exc)) from None
        except DjangoValidationError as exc:
            # Hostile more often than careless: audited (reason only; the paths
            # are made of the sender's keys, so they stay out of the trail).
            request = (parser_context or {}).get("request")
            record(
                "api.input_refused",
                outcome=Outcome.DENIED,
                details={"reason": "invalid", "method": getattr(request, "method", "")},
                request=getattr(request, "_request", None),
            )
            raise exceptions.ValidationError(exc.message_dict) from None
