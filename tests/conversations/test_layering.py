"""``conversations`` never imports a channel (DESIGN.md, "The seam"): it announces
events and the channel layer subscribes."""

from __future__ import annotations

import ast
from pathlib import Path

from django.db import transaction

from conversations import events
from tests import support

HIGHER = ("connectors", "bots", "crm")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_no_module_of_conversations_imports_a_higher_layer():
    root = Path(support.BASE_DIR) / "conversations"
    offending = {
        str(path.relative_to(root)): name
        for path in root.rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in HIGHER
    }
    assert offending == {}
    assert len(list(root.rglob("*.py"))) > 5  # the scan saw the app


def test_the_channel_layer_subscribes_to_reply_queued():
    receivers = [r for r in events.reply_queued._live_receivers(None)[0]]
    assert any(getattr(r, "__module__", "") == "connectors.tasks" for r in receivers)


def test_announcements_wait_for_the_commit(django_db_blocker):
    seen = []

    def receiver(**kwargs):
        seen.append(kwargs["message_id"])

    events.message_received.connect(receiver)
    try:
        with django_db_blocker.unblock(), transaction.atomic():
            events.announce(events.message_received, "message_received", message_id=7)
            assert seen == []
        assert seen == [7]
        with django_db_blocker.unblock():
            try:
                with transaction.atomic():
                    events.announce(events.message_received, "message_received", message_id=8)
                    raise RuntimeError
            except RuntimeError:
                pass
        assert seen == [7]
    finally:
        events.message_received.disconnect(receiver)
