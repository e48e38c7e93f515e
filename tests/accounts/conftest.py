import pytest

from tests import support


@pytest.fixture
def fresh_counters():
    """Tests that count requests start and end with no rate-limit or lockout counters."""
    support.clear_rate_counters()
    yield
    support.clear_rate_counters()
