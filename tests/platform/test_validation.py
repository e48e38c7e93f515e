"""parley.validation: the checks every input path shares (no database needed)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from parley import validation


@pytest.mark.parametrize(
    "value",
    ["a\x00b", "\ud800", "x\udfff", "\udbff\udc00"],  # the last: a pair split in two
)
def test_it_refuses_text_postgres_or_utf8_cannot_hold(value):
    assert validation.text_problem(value)
    with pytest.raises(ValidationError) as caught:
        validation.clean_text(value, field="name", label="The name", max_length=100)
    assert set(caught.value.message_dict) == {"name"}


@pytest.mark.parametrize("value", ["", "Ada", "漢字 ²", "emoji 🙂", " padded "])
def test_it_keeps_ordinary_text(value):
    assert validation.text_problem(value) is None
    assert validation.clean_text(value, field="f", label="F", max_length=100) == value.strip()


def test_it_bounds_length_and_types():
    with pytest.raises(ValidationError):
        validation.clean_text("x" * 11, field="f", label="F", max_length=10)
    with pytest.raises(ValidationError):
        validation.clean_text(["x"], field="f", label="F", max_length=10)
    with pytest.raises(ValidationError):
        validation.clean_text(1, field="f", label="F", max_length=10)
    assert validation.clean_text(42, field="f", label="F", max_length=10, ints=True) == "42"
    with pytest.raises(ValidationError):
        validation.clean_text(2**64, field="f", label="F", max_length=100, ints=True)
    with pytest.raises(ValidationError):
        validation.clean_text(True, field="f", label="F", max_length=10, ints=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12), (" 7 ", 7), ("²", None), ("١٢", None), ("9" * 20, None), ("", None), ("-1", None)],
)
def test_it_reads_only_ascii_digits(value, expected):
    assert validation.ascii_int(value) == expected


@pytest.mark.parametrize("value", ["²", "١٢", "9" * 5000, 0, 2**63, True, 1.0, None, [1]])
def test_parse_int_refuses_what_is_not_a_bounded_whole_number(value):
    with pytest.raises(ValidationError):
        validation.parse_int(value, field="n", label="N")


def test_parse_int_accepts_numbers_and_ascii_digit_strings():
    assert validation.parse_int(5, field="n", label="N") == 5
    assert validation.parse_int("5", field="n", label="N") == 5
    assert validation.parse_int(2**63 - 1, field="n", label="N") == 2**63 - 1


@pytest.mark.parametrize(
    "raw",
    [b"\xff", b"{", b"NaN", b'{"a": Infinity}', "[" * 100_000, '{"a": 1}'.encode("utf-16")],
)
def test_json_loads_calls_broken_json_a_syntax_error(raw):
    with pytest.raises(validation.JSONSyntaxError):
        validation.json_loads(raw)


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"a": {"b": "x\\u0000"}}', "a.b"),
        (b'{"a": ["ok", "\\ud800"]}', "a[1]"),
        (b'{"k\\u0000": 1}', "body"),
        (b'{"n": 99999999999999999999}', "body"),
        (b'{"n": 1e400}', "n"),
        (b'{"d": ' + b"[" * 40 + b"]" * 40 + b"}", "d" + "[0]" * 31),
    ],
)
def test_json_loads_names_the_path_of_stored_content_it_refuses(raw, path):
    with pytest.raises(ValidationError) as caught:
        validation.json_loads(raw)
    assert path in caught.value.message_dict


def test_json_loads_returns_good_documents():
    assert validation.json_loads(b'{"a": [1, -2, 3.5, "\\u00e9", null, true]}') == {
        "a": [1, -2, 3.5, "é", None, True]
    }
