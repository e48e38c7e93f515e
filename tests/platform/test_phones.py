"""parley.phones.normalise on any text: never raises, ASCII out, and stable when fed
its own output (the re-index relies on that to be idempotent)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley import phones

REGIONS = ["US", "GB", "DE", "FR", "IN", "BR", "JP"]
phone_like = st.text(alphabet="0123456789 +-()./\uff0b\u0660\u0664\u00b2x", max_size=40)


@settings(max_examples=400, deadline=None)
@given(value=st.one_of(st.text(max_size=60), phone_like), region=st.sampled_from(REGIONS))
def test_it_is_total_ascii_and_idempotent(value, region):
    key, display = phones.normalise(value, region=region)
    assert key.isascii() and display.isascii()
    assert (key == "") == (display == "")
    if key.startswith(phones.FALLBACK_PREFIX):
        assert display.isdigit() and key == phones.FALLBACK_PREFIX + display
    elif key:
        assert key.startswith("+") and key[1:].isdigit() and display == key
    assert phones.normalise(display, region=region) == (key, display)


@pytest.mark.parametrize(("value", "region"), [("000000", "DE"), ("+4900000", "DE")])
def test_a_number_phonenumbers_would_read_differently_the_second_time_is_not_e164(
    value, region
):
    """Found by the property above: "000000" in DE formatted as "+4900000", which
    reads back as "+490000". Such a reading is not taken; the value is then its digits."""
    key, display = phones.normalise(value, region=region)
    assert phones.normalise(display, region=region) == (key, display)
    assert key != "+4900000"


@pytest.mark.parametrize("region", ["", "gb", "XX", "G\x00", None, 44])
def test_it_refuses_an_unknown_region(region):
    with pytest.raises(ValueError):
        phones.normalise("+44 20 7946 0018", region=region)
