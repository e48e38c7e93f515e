from __future__ import annotations

import pytest

from tests.connectors.meta.support import TOKEN
from tests.fakes.graph import FakeGraph


@pytest.fixture
def graph():
    """A local Graph API that wants ``Bearer TOKEN``."""
    with FakeGraph(token=TOKEN) as server:
        yield server
