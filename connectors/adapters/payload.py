"""Reading hostile webhook bytes: bounded JSON and typed field readers.

Every refusal is a :class:`PayloadInvalid` with a stable ``code`` (the webhook
answers 400 with it). The rules, for every channel kind:

- at most ``MAX_BODY_BYTES``, strict UTF-8, one JSON document;
- no NaN/Infinity, integers within 64 bits, no duplicate keys, nesting at most
  ``MAX_DEPTH`` and at most ``MAX_NODES`` values (``json.loads`` recurses: a
  deeply nested body raises RecursionError inside it, caught here);
- no NUL character and no lone surrogate in any string or key;
- ids are 1 to ``MAX_ID_LENGTH`` printable ASCII characters (so "²" or a
  full-width digit is refused, never normalised into another id);
- timestamps are ASCII digits or integers within a sane range.

Display names are the one thing sanitised rather than refused (control
characters dropped, length cut): a name is informative, an id is a key.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 100_000
MAX_ID_LENGTH = 256
MAX_INT = 2**63 - 1
MAX_TEXT_LENGTH = 65_536  # characters; channels cap far lower (WhatsApp 4096, Messenger 2000)
_ID = re.compile(r"[\x21-\x7e]+")
_DIGITS = re.compile(r"[0-9]{1,16}")
# 2001-09-09 (10 digits in seconds) .. 2286: Meta's clocks live here; anything else is forged.
MIN_EPOCH, MAX_EPOCH = 1_000_000_000, 9_999_999_999


class PayloadInvalid(Exception):
    """A webhook body the adapter refuses; ``code`` is stable (API answer, audit, metrics)."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(detail or code)
        self.code = code
        self.detail = detail or code


def _constant(name: str) -> Any:
    raise PayloadInvalid("number_invalid", f"{name} is not a JSON number.")


def _int(text: str) -> int:
    if len(text) > 20:
        raise PayloadInvalid("number_invalid", "An integer is longer than 64 bits.")
    value = int(text)
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise PayloadInvalid("number_invalid", "An integer is longer than 64 bits.")
    return value


def _float(text: str) -> float:
    if len(text) > 64:
        raise PayloadInvalid("number_invalid", "A number has too many digits.")
    value = float(text)
    if not math.isfinite(value):
        raise PayloadInvalid("number_invalid", "A number is out of range.")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # Two values for one key: which one a reader sees is parser-dependent.
        raise PayloadInvalid("duplicate_key", "A key appears twice in one object.")
    return result


def _clean_string(value: str) -> None:
    if "\x00" in value:
        raise PayloadInvalid("nul_character", "The payload contains a NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadInvalid(
            "surrogate_character", "The payload contains a lone surrogate."
        ) from None


def _check_tree(document: Any) -> None:
    """Depth, size and string rules, walked without recursion."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise PayloadInvalid("payload_too_large", "The payload has too many values.")
        if isinstance(value, str):
            _clean_string(value)
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise PayloadInvalid("payload_too_deep", "The payload is nested too deeply.")
            if isinstance(value, dict):
                for key, item in value.items():
                    _clean_string(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def load_json(body: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """Raw bytes → a JSON value obeying the module's rules, or :class:`PayloadInvalid`."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise PayloadInvalid("body_invalid", "The body is not bytes.")
    body = bytes(body)
    if not body:
        raise PayloadInvalid("body_empty", "The body is empty.")
    if len(body) > max_bytes:
        raise PayloadInvalid("payload_too_large", f"The body is larger than {max_bytes} bytes.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadInvalid("encoding_invalid", "The body is not UTF-8.") from None
    try:
        document = json.loads(
            text,
            parse_constant=_constant,
            parse_int=_int,
            parse_float=_float,
            object_pairs_hook=_object,
        )
    except PayloadInvalid:
        raise
    except RecursionError:
        raise PayloadInvalid("payload_too_deep", "The payload is nested too deeply.") from None
    except (ValueError, TypeError):
        # JSONDecodeError is a ValueError; so is int()'s digit-count limit.
        raise PayloadInvalid("json_invalid", "The body is not one JSON document.") from None
    _check_tree(document)
    return document


# --- typed readers -------------------------------------------------------------------------------


def obj(value: Any, code: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadInvalid(code, "An object was expected.")
    return value


def optional_obj(value: Any, code: str) -> dict[str, Any]:
    """A missing (None) object reads as empty; anything but an object is refused."""
    return {} if value is None else obj(value, code)


def items(value: Any, code: str, *, limit: int) -> list[Any]:
    """A list of at most ``limit`` items; missing reads as empty."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadInvalid(code, "A list was expected.")
    if len(value) > limit:
        raise PayloadInvalid("batch_too_large", f"More than {limit} items in one list.")
    return value


def ident(value: Any, code: str, *, required: bool = True) -> str:
    """An id: printable ASCII, no spaces, 1..MAX_ID_LENGTH. Integers are read as their digits."""
    if value is None or value == "":
        if required:
            raise PayloadInvalid(code, "An id is missing.")
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH or not _ID.fullmatch(value):
        raise PayloadInvalid(code, "An id is not 1 to 256 printable ASCII characters.")
    return value


def text(value: Any, code: str, *, limit: int = MAX_TEXT_LENGTH) -> str:
    """A text as sent (not stripped: the customer's spaces are theirs); missing reads as ""."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadInvalid(code, "A text was expected.")
    if len(value) > limit:
        raise PayloadInvalid("text_too_long", f"A text is longer than {limit} characters.")
    return value


def label(value: Any, *, limit: int = 200) -> str:
    """A display name, sanitised: whitespace runs become one space, control and format
    characters (bidi overrides, zero-width) are dropped, then cut at ``limit``."""
    if not isinstance(value, str):
        return ""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in value
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    )
    return " ".join(kept.split())[:limit]


def timestamp(value: Any, code: str, *, millis: bool = False) -> datetime:
    """Unix time (seconds, or milliseconds with ``millis``) as ASCII digits or an integer."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadInvalid(code, "A timestamp is not a number of seconds.")
    seconds = value / 1000 if millis else value
    if not MIN_EPOCH <= seconds <= MAX_EPOCH:
        raise PayloadInvalid(code, "A timestamp is out of range.")
    return datetime.fromtimestamp(seconds, tz=UTC)


def coordinate(value: Any, code: str, *, bound: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadInvalid(code, "A coordinate is not a number.")
    value = float(value)
    if not -bound <= value <= bound:
        raise PayloadInvalid(code, "A coordinate is out of range.")
    return value


def integer(value: Any) -> int | None:
    """An error code or similar: an int (or ASCII digits), else None (informative only)."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT:
        return value
    return None
