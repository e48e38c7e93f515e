"""The adapter contract: registry, outbound message shapes, and the layer rule
(adapters and Meta channels import nothing above the kernel)."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.adapters import registry
from connectors.adapters.base import (
    Button,
    ChannelAdapter,
    DeliveryError,
    InboundMessage,
    ListRow,
    ListSection,
    MediaLink,
    OutboundMessage,
    ParsedEvent,
    Template,
)
from connectors.meta import ADAPTERS, INSTAGRAM, MESSENGER, WHATSAPP, register_meta

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = ("conversations", "tenants", "accounts", "audit", "bots")


class Echo(ChannelAdapter):
    kind = "echo_test"

    def verify(self, headers, body, secrets):
        return True

    def parse_document(self, document):
        return ParsedEvent()

    def send(self, message, settings, secrets, http):
        raise DeliveryError("never", permanent=True)


@pytest.fixture
def clean_registry():
    before = registry.kinds()
    yield
    for kind in set(registry.kinds()) - set(before):
        registry.unregister(kind)


def test_the_meta_kinds_register_once(clean_registry):
    register_meta()
    register_meta()  # idempotent
    assert {"whatsapp", "messenger", "instagram"} <= set(registry.kinds())
    assert registry.get("whatsapp") is WHATSAPP
    assert registry.get("messenger") is MESSENGER
    assert registry.get("instagram") is INSTAGRAM


def test_a_taken_kind_cannot_be_replaced(clean_registry):
    registry.register(Echo())
    with pytest.raises(ValueError):
        registry.register(Echo())
    assert registry.kinds() == tuple(sorted(registry.kinds()))


@pytest.mark.parametrize("kind", ["", "WhatsApp", "a b", "x" * 33, "../x"])
def test_a_kind_name_is_checked(clean_registry, kind):
    adapter = Echo()
    adapter.kind = kind
    with pytest.raises(ValueError):
        registry.register(adapter)


@pytest.mark.parametrize("kind", ["telegram", "", None, "whatsapp\x00"])
def test_an_unknown_kind_fails_closed(kind):
    with pytest.raises(registry.UnknownChannelKind):
        registry.get(kind)


def test_adapters_declare_their_settings_and_secrets():
    for adapter in ADAPTERS:
        assert adapter.kind and adapter.label
        assert "access_token" in adapter.SECRETS and "app_secret" in adapter.SECRETS
        assert "api_version" in adapter.SETTINGS and "graph_base_url" in adapter.SETTINGS


def test_values_are_frozen():
    message = OutboundMessage(recipient_id="1", text="Hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.text = "changed"  # type: ignore[misc]
    assert dataclasses.fields(InboundMessage)  # a dataclass: storable field by field


@pytest.mark.parametrize(
    "kwargs",
    [
        {"recipient_id": "", "text": "Hi"},
        {"recipient_id": "1"},
        {"recipient_id": "1", "text": "Hi", "template": Template("t", "en")},
        {
            "recipient_id": "1",
            "text": "caption?",
            "media": MediaLink(type="image", url="https://a/x"),
        },
        {
            "recipient_id": "1",
            "text": "Pick",
            "buttons": tuple(Button(str(i), str(i)) for i in range(4)),
        },
        {"recipient_id": "1", "buttons": (Button("a", "A"),)},
        {
            "recipient_id": "1",
            "text": "Pick",
            "buttons": (Button("a", "A"),),
            "list_button": "L",
            "list_sections": (ListSection("s", (ListRow("r", "R"),)),),
        },
        {
            "recipient_id": "1",
            "text": "Pick",
            "list_sections": (ListSection("s", (ListRow("r", "R"),)),),
        },
        {
            "recipient_id": "1",
            "text": "Pick",
            "list_button": "L",
            "list_sections": (ListSection("s", tuple(ListRow(str(i), "R") for i in range(11))),),
        },
        {"recipient_id": "1", "media": MediaLink(type="image")},
    ],
)
def test_impossible_outbound_shapes_are_refused(kwargs):
    with pytest.raises(ValueError):
        OutboundMessage(**kwargs)


def test_a_delivery_error_carries_its_class():
    error = DeliveryError(
        "x", permanent=True, code="outside_window", outside_window=True, vendor_code=131047
    )
    assert (
        error.permanent,
        error.code,
        error.outside_window,
        error.auth_failed,
        error.retry_after,
    ) == (
        True,
        "outside_window",
        True,
        False,
        None,
    )
    assert "131047" in repr(error)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "connectors" / "adapters").glob("*.py"))
    + sorted((ROOT / "connectors" / "meta").glob("*.py")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_adapters_import_nothing_above_the_kernel(path):
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {name}"
        assert not name.startswith("django.db"), (
            f"{path.name} imports {name}: adapters have no models"
        )
        if top == "connectors":
            assert name.startswith(("connectors.adapters", "connectors.meta")), (
                f"{path.name} imports {name}"
            )


def test_importing_the_meta_package_loads_no_higher_layer():
    code = (
        "import sys, connectors.meta; "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} "
        "or m.startswith(('connectors.models', 'connectors.channels', 'django.db.models'))); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "build",
    [
        lambda: OutboundMessage(recipient_id=16505551234, text="Hi"),  # type: ignore[arg-type]
        lambda: OutboundMessage(recipient_id="1", text="Hi\x00"),
        lambda: OutboundMessage(recipient_id="1", text="\ud800"),
        lambda: OutboundMessage(recipient_id="1", text="Pick", buttons=[Button("a", "A")]),  # type: ignore[arg-type]
        lambda: OutboundMessage(recipient_id="1", text="Pick", buttons=("a",)),  # type: ignore[arg-type]
        lambda: OutboundMessage(recipient_id="1", template="hello_world"),  # type: ignore[arg-type]
        lambda: Button(1, "A"),  # type: ignore[arg-type]
        lambda: ListSection("s", [ListRow("r", "R")]),  # type: ignore[arg-type]
        lambda: Template("t", "en", ({"x": float("nan")},)),
        lambda: Template("t", "en", ({"x": object()},)),
        lambda: Template("t", "en", ("body",)),  # type: ignore[arg-type]
        lambda: MediaLink(type="image", url=None),  # type: ignore[arg-type]
    ],
)
def test_outbound_values_check_their_types(build):
    with pytest.raises(ValueError):
        build()
