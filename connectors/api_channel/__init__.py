"""The API channel (kind ``api``): the generic connector for custom integrations.

A leaf like ``connectors.meta``: it imports only ``connectors.adapters`` and the
kernel. :func:`register_api` adds its adapter to the registry at start-up.
"""

from __future__ import annotations

from connectors.adapters import registry
from connectors.api_channel.adapter import ApiChannelAdapter

API = ApiChannelAdapter()


def register_api() -> None:
    registry.register(API)
