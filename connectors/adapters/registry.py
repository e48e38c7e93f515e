"""The registry of channel kinds: one adapter instance per kind.

The generic webhook view, delivery task and channel pages look a kind up here
and never name a provider. Kinds register once at start-up (the connectors app
config calls each provider package's ``register_*``); registering a different
adapter under a taken kind is a programming error and raises.
"""

from __future__ import annotations

import re
import threading

from connectors.adapters.base import ChannelAdapter

_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_adapters: dict[str, ChannelAdapter] = {}
_lock = threading.Lock()


class UnknownChannelKind(LookupError):
    def __init__(self, kind: str):
        super().__init__(f"No channel adapter is registered for kind {kind!r}.")
        self.kind = kind


def register(adapter: ChannelAdapter) -> ChannelAdapter:
    """Add ``adapter`` under ``adapter.kind``; registering the same instance again is a no-op."""
    if not isinstance(adapter, ChannelAdapter):
        raise TypeError("Only ChannelAdapter instances can be registered.")
    kind = adapter.kind
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError(f"A channel kind is 1-32 lower-case letters, digits or _: {kind!r}.")
    with _lock:
        present = _adapters.get(kind)
        if present is not None and present is not adapter:
            raise ValueError(f"Channel kind {kind!r} is already registered.")
        _adapters[kind] = adapter
    return adapter


def unregister(kind: str) -> None:
    """Remove a kind (tests that register a throw-away adapter clean up with this)."""
    with _lock:
        _adapters.pop(kind, None)


def get(kind: str) -> ChannelAdapter:
    """The adapter for ``kind``, or :class:`UnknownChannelKind` (fail closed)."""
    adapter = _adapters.get(kind) if isinstance(kind, str) else None
    if adapter is None:
        raise UnknownChannelKind(str(kind)[:40])
    return adapter


def kinds() -> tuple[str, ...]:
    """Registered kinds, sorted (stable for forms and URL lists)."""
    return tuple(sorted(_adapters))
