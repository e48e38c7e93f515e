"""The inbox list: each row shows a preview, the time, its unread state and
whether it is the open one; no "Hand back to bot" without a bot."""

from __future__ import annotations

import pytest

from tests import support
from tests.conversations.test_inbox import setup  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.django_db


def test_a_row_shows_a_preview_the_time_and_unread_state(acme, setup):  # noqa: F811
    page = support.signed_in(acme, "agent@acme.test").get("/inbox/").content.decode()
    row = page[
        page.index('<li class="conv-item') : page.index("</li>", page.index('<li class="conv-item'))
    ]
    assert "Ada Lovelace" in row
    assert '<span class="preview">My order is late</span>' in row
    assert '<time class="conv-time"' in row
    assert "conv-item unread" in row and "1 unread" in row


def test_the_open_conversation_is_marked_and_hand_back_is_hidden(acme, setup):  # noqa: F811
    conversation = setup["conversation"]
    page = support.signed_in(acme, "agent@acme.test").get(f"/inbox/?c={conversation.pk}")
    html = page.content.decode()
    assert 'aria-current="true"' in html
    assert "All conversations" in html  # the way back on a phone
    assert "Hand back to bot" not in html


def test_an_agent_outside_the_inbox_sees_no_preview(acme, setup):  # noqa: F811
    page = support.signed_in(acme, "agent2@acme.test").get("/inbox/?status=any").content.decode()
    assert "My order is late" not in page and "Ada Lovelace" not in page
