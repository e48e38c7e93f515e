"""Phone numbers as one canonical string, so a blind index finds a number however
it was written: ``+44 20 7946 0018``, ``0044 20 7946 0018`` and (in the GB region)
``020 7946 0018`` are all ``+442079460018`` (E.164).

Rules, in order, on the number's decimal digits (any script, read as ASCII; every
other character but a leading ``+`` is ignored, so NUL, letters, lone surrogates or
``²`` cannot smuggle anything in):

1. a leading ``+``: international, ``+<digits>``;
2. the digits as written in the tenant's default region (national format with the
   trunk prefix, or that region's own international prefix such as ``00``/``011``);
3. digits starting ``00``: ``00`` read as the international prefix (most of the world
   dials it; a region whose prefix is ``011`` would otherwise not read ``0044 …``).

The first reading phonenumbers calls a *possible* number (right length for its
country) wins and is formatted E.164. None does: the deterministic fallback
``raw:<digits>`` (or ``""`` without digits). It never equals an E.164 string, so an
unreadable number matches only the same digits, never a real number.
"""

from __future__ import annotations

import unicodedata

import phonenumbers

FALLBACK_PREFIX = "raw:"
_PLUS = {"+", "\uff0b"}  # ASCII and fullwidth plus
_MAX_DIGITS = 32  # E.164 has at most 15; phonenumbers refuses more than 250 characters


def region_valid(region: object) -> bool:
    return isinstance(region, str) and region in phonenumbers.SUPPORTED_REGIONS


def _digits_and_plus(value: str) -> tuple[str, bool]:
    digits: list[str] = []
    plus = False
    for ch in value:
        if ch in _PLUS and not digits:
            plus = True
            continue
        digit = unicodedata.decimal(ch, None)  # Nd only: "٣" is 3, "²" is not a digit
        if digit is not None:
            digits.append(str(digit))
    return "".join(digits), plus


def _possible(candidate: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise(value: str, *, region: str) -> tuple[str, str]:
    """``(index key, display)``: E.164 twice, or ``("raw:<digits>", "<digits>")``,
    or ``("", "")`` when the value holds no digit."""
    if not region_valid(region):
        raise ValueError(f"unknown phone region {region!r}")
    digits, plus = _digits_and_plus(value or "")
    if not digits:
        return "", ""
    if len(digits) <= _MAX_DIGITS:
        candidates = [f"+{digits}"] if plus else []
        candidates.append(digits)
        if digits.startswith("00"):
            candidates.append(f"+{digits[2:]}")
        for candidate in candidates:
            e164 = _possible(candidate, region)
            # Only a fixpoint: phonenumbers formats some degenerate numbers as a
            # string it then reads differently ("000000" in DE is "+4900000", which
            # reads as "+490000"), and a key must be found again from its display.
            if e164 and _possible(e164, region) == e164:
                return e164, e164
    return FALLBACK_PREFIX + digits, digits
