"""The flow editor in a real browser: a marketer builds a flow on the canvas with
the mouse and the keyboard, sees a problem on its node, fixes it, simulates,
publishes (a web chat visitor is then answered by it), rolls back, and still
cannot open the inbox; two tabs on one draft conflict; the pages fit a phone."""

from __future__ import annotations

import re
import threading

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import axe_problems, sideways_scroll, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
BOT_CHAT = "Website chat bot E2E"


@pytest.fixture(scope="module")
def bot_chat(live_url, django_db_blocker):
    """A web chat channel of its own (inbox "Website chat bot E2E"), so the flow
    published here answers no other test's visitors. Its name sorts after the demo's
    "Website chat": /demo/chat/ shows the first web chat by name, and stays the demo's.
    Returns (base URL, the chat frame's URL)."""
    base = live_url("acme.localhost")
    found: list = []

    def setup():
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django_tenants.utils import schema_context

        from connectors.webchat.services import webchat_channel_create

        try:
            with schema_context("t_acme"):
                owner = get_user_model().objects.get(email="owner@acme.test")
                channel = webchat_channel_create(by=owner, name=BOT_CHAT, allowed_origins=[base])
                found.append(channel.public_id)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            found.append(exc)
        finally:
            connection.close()

    # A thread of its own: Django refuses database calls in Playwright's event loop thread.
    with django_db_blocker.unblock():
        thread = threading.Thread(target=setup)
        thread.start()
        thread.join(60)
    if isinstance(found[0], BaseException):
        raise found[0]
    return base, f"{base}/webchat/{found[0]}/"


def _node(page, gid: str):
    return page.locator(f"#fe-canvas .fnode[data-gid='{gid}']")


def _drag_palette(page, label: str, x: int, y: int) -> None:
    """HTML5 drag from the palette to a point of the canvas."""
    item = page.locator(".fe-palette-item", has_text=label)
    item.drag_to(page.locator("#fe-canvas"), target_position={"x": x, "y": y})


def _connect_by_mouse(page, source: str, port_index: int, target: str) -> None:
    out = _node(page, source).locator(f".outputs .output_{port_index}")
    box = out.bounding_box()
    goal = _node(page, target).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(goal["x"] + 30, goal["y"] + 20, steps=8)
    page.mouse.up()


def _saved(page) -> None:
    expect(page.locator("#fe-save")).to_have_text(
        re.compile(r"^(Saved|Draft v\d+ saved)$"), timeout=10_000
    )


def test_a_marketer_builds_checks_simulates_and_publishes_a_flow(
    bot_chat, default_worker, browser, page
):
    base, chat_url = bot_chat
    sign_in(page, base, "marketer@acme.test")
    page.get_by_role("link", name="Flows", exact=True).click()
    expect(page.locator("#flows-status")).not_to_have_text("Loading flows…")
    page.get_by_label("Name").fill("E2E Orders bot")
    page.get_by_role("button", name="Create flow").click()
    page.wait_for_url(re.compile(r"/flows/\d+/$"))
    expect(_node(page, "start")).to_be_visible()
    _saved(page)

    # Mouse: drag a "Send message" and an "Intent router" from the palette.
    _drag_palette(page, "Send message", 330, 90)
    expect(_node(page, "send_1")).to_be_visible()
    page.locator("#fe-props-body textarea").first.fill("Hello {{contact.name}}, how can we help?")
    expect(_node(page, "send_1").locator(".fnode-summary")).to_contain_text("how can we help")
    _drag_palette(page, "Intent router", 330, 330)
    expect(_node(page, "intent_1")).to_be_visible()

    # Keyboard: add a "Hand off" node from the palette with Enter, nudge it with arrows.
    page.locator(".fe-palette-item[data-type='handoff']").focus()
    page.keyboard.press("Enter")
    handoff = _node(page, "handoff_1")
    expect(handoff).to_be_focused()
    left = handoff.bounding_box()["x"]
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert handoff.bounding_box()["x"] > left + 20

    # Connect: start → send by dragging a port; the rest through the side panel.
    _connect_by_mouse(page, "start", 1, "send_1")
    expect(page.locator("#fe-canvas .connection")).to_have_count(1)
    _node(page, "send_1").click()
    page.get_by_label("Port next").select_option("intent_1")
    expect(page.locator("#fe-canvas .connection")).to_have_count(2)

    # The intent router: one intent with no examples yet → a problem on its node.
    _node(page, "intent_1").click()
    page.get_by_role("button", name="Add intent", exact=True).click()
    name = page.get_by_label("Name (a–z, 0–9, _)")
    name.fill("orders")
    name.press("Tab")
    page.get_by_label("Port intent:orders").select_option("handoff_1")
    page.get_by_label("Port fallback").select_option("handoff_1")
    _saved(page)
    intent = _node(page, "intent_1")
    expect(intent).to_have_class(re.compile(r"\bhas-problem\b"))
    expect(intent.locator(".fnode-problems")).to_contain_text(re.compile("example", re.I))
    problem = page.locator("#fe-problems-list button", has_text="intent_1")
    expect(problem).to_be_visible()
    # The problem list focuses its node.
    page.locator("#fe-canvas").click(position={"x": 5, "y": 5})
    problem.click()
    expect(intent).to_be_focused()
    expect(page.locator("#fe-props-title")).to_have_text("Intent router: intent_1")

    # Fix it: examples for the intent; the problem goes away.
    page.get_by_label("Examples (one per line)").fill(
        "where is my order\ntrack my parcel\nmy order has not arrived"
    )
    _saved(page)
    expect(intent).not_to_have_class(re.compile(r"\bhas-problem\b"))
    expect(page.locator("#fe-problems-summary")).to_have_text("No problems: ready to publish.")

    # Undo brings back the old examples (and the problem); redo restores the fix.
    page.get_by_role("button", name="Undo").click()
    _saved(page)
    expect(intent).to_have_class(re.compile(r"\bhas-problem\b"))
    page.keyboard.press("Control+Shift+Z")
    _saved(page)
    expect(intent).not_to_have_class(re.compile(r"\bhas-problem\b"))

    # Simulate: the path lights up on the canvas, the transcript shows the greeting.
    page.get_by_label("Customer message").fill("where is my ordr")
    page.locator("#fe-sim-form").get_by_role("button", name="Send").click()
    transcript = page.locator("#fe-sim-transcript")
    expect(transcript).to_contain_text("how can we help?")
    expect(page.locator("#fe-sim-outcome")).to_contain_text("handoff")
    for gid in ("start", "send_1", "intent_1", "handoff_1"):
        expect(_node(page, gid)).to_have_class(re.compile(r"\bon-path\b"))
    expect(page.locator("#fe-sim-path")).to_contain_text("intent:orders")
    # The editor as it is now (nodes, a problem-free panel, a transcript) passes axe.
    assert axe_problems(page) == []

    # Publish, confirmed in a dialog.
    page.get_by_role("button", name="Publish…").click()
    dialog = page.locator("#fe-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Note (optional)").fill("first version")
    dialog.get_by_role("button", name="Publish").click()
    expect(page.locator("#fe-notice")).to_contain_text("Published as version 1")
    expect(page.locator("#fe-live")).to_have_text("Live: v1")
    expect(page.locator("#fe-versions-list")).to_contain_text("published")

    # The diff from v1 to the new draft (a copy): nothing; then one change.
    page.get_by_role("button", name="Changes v1 → draft").click()
    expect(page.locator("#fe-diff")).to_contain_text("No differences.")
    _node(page, "send_1").click()
    page.locator("#fe-props-body textarea").first.fill("Hi {{contact.name}}!")
    _saved(page)
    page.get_by_role("button", name="Changes v1 → draft").click()
    expect(page.locator("#fe-diff")).to_contain_text("send_1")
    # Roll back to v1, confirmed: a new live version 2.
    page.get_by_role("button", name="Roll back to v1").click()
    page.locator("#fe-dialog").get_by_role("button", name="Roll back").click()
    expect(page.locator("#fe-notice")).to_contain_text("version 2 is live")
    expect(page.locator("#fe-live")).to_have_text("Live: v2")

    # The flow serves the bot chat's inbox: a visitor's message follows the live version.
    settings = page.locator("#fe-settings-form")
    settings.get_by_label(BOT_CHAT, exact=True).check()
    settings.get_by_role("button", name="Save settings").click()
    expect(page.locator("#fe-settings-status")).to_have_text("Settings saved.")
    visitor = browser.new_context()
    try:
        chat = visitor.new_page()
        chat.goto(chat_url)
        chat.get_by_role("button", name="Chat with us").click()
        chat.get_by_label("Your message").fill("where is my order")
        chat.get_by_role("button", name="Send").click()
        log = chat.get_by_role("log")
        expect(log).to_contain_text("where is my order")
        expect(log).to_contain_text("how can we help?", timeout=20_000)
    finally:
        visitor.close()
    # Switched off again: nothing else is answered by this flow.
    settings.get_by_label("Enabled").uncheck()
    settings.get_by_role("button", name="Save settings").click()
    expect(page.locator("#fe-settings-status")).to_have_text("Settings saved.")

    # The flows list shows it live; the inbox stays closed to a marketer.
    page.get_by_role("link", name="All flows").click()
    row = page.locator("#flows-rows tr", has_text="E2E Orders bot")
    expect(row).to_contain_text("v2")
    expect(row).to_contain_text(BOT_CHAT)
    expect(row).to_contain_text("switched off")
    response = page.goto(base + "/inbox/")
    assert response.status == 403


def test_the_flow_pages_fit_a_phone(live_url, page):
    base = live_url("acme.localhost")
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, base, "marketer@acme.test")
    page.goto(base + "/flows/")
    expect(page.locator("#flows-status")).not_to_have_text("Loading flows…")
    assert sideways_scroll(page) is None
    assert axe_problems(page) == []
    page.locator("#flow-name").fill("E2E Phone flow")
    page.get_by_role("button", name="Create flow").click()
    page.wait_for_url(re.compile(r"/flows/\d+/$"))
    expect(_node(page, "start")).to_be_visible()
    # A node added from the palette with a tap; the panels stack under the canvas.
    page.locator(".fe-palette-item[data-type='end']").click()
    expect(_node(page, "end_1")).to_be_visible()
    _saved(page)
    assert sideways_scroll(page) is None
    # Keyboard only: Enter on the node jumps to its panel, Escape comes back,
    # Delete removes it, Ctrl+Z brings it back.
    end = _node(page, "end_1")
    end.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Goodbye text")).to_be_focused()
    page.keyboard.press("Escape")
    expect(end).to_be_focused()
    page.keyboard.press("Delete")
    expect(end).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(_node(page, "end_1")).to_be_visible()
    expect(page.locator("#fe-canvas .fnode:focus")).to_have_count(1)  # focus stays on the canvas
    _saved(page)
    # An "Ask" node: changing its answer kind rebuilds the panel, focus stays on the kind.
    page.locator(".fe-palette-item[data-type='ask']").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    kind = page.get_by_label("Answer kind")
    kind.focus()
    kind.select_option("choice")
    expect(page.get_by_label("Choices (one per line)")).to_be_visible()
    expect(kind).to_be_focused()
    canvas = page.locator("#fe-canvas").bounding_box()
    panel = page.locator("#fe-props").bounding_box()
    assert panel["y"] >= canvas["y"] + canvas["height"]


def test_a_draft_changed_in_another_tab_is_a_conflict_not_an_overwrite(live_url, page):
    base = live_url("acme.localhost")
    sign_in(page, base, "marketer@acme.test")
    page.goto(base + "/flows/")
    page.locator("#flow-name").fill("E2E Two tabs")
    page.get_by_role("button", name="Create flow").click()
    page.wait_for_url(re.compile(r"/flows/\d+/$"))
    _saved(page)
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.locator("#fe-canvas .fnode[data-gid='start']")).to_be_visible()
    _saved(other)
    # The other tab saves first; this one, loaded before, is refused.
    other.locator(".fe-palette-item[data-type='end']").click()
    _saved(other)
    page.locator(".fe-palette-item[data-type='send']").click()
    expect(page.locator("#fe-save")).to_contain_text("Conflict", timeout=10_000)
    expect(page.locator("#fe-notice")).to_contain_text("changed in another tab")
    page.get_by_role("button", name="Load the latest draft").click()
    expect(_node(page, "end_1")).to_be_visible()
    expect(_node(page, "send_1")).to_have_count(0)
    _saved(page)
    other.close()
    # The refused save is the one 4xx answer of this test, and it was expected: the
    # fixture fails on any other.
    refused = [p for p in page.console_problems if p.startswith("409 ") and "/draft/" in p]
    assert len(refused) == 1, page.console_problems
    page.console_problems.remove(refused[0])
