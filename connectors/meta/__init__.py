"""Meta channels: WhatsApp Cloud API, Messenger and Instagram messaging.

``common`` holds what the three share (X-Hub-Signature-256, the subscription
handshake, the Graph API call and its error classes); each kind is one
adapter module. :func:`register_meta` adds the three to the channel registry;
the connectors app calls it once at start-up. See docs/connectors.md.
"""

from __future__ import annotations

from connectors.adapters import registry
from connectors.meta.instagram import InstagramAdapter
from connectors.meta.messenger import MessengerAdapter
from connectors.meta.whatsapp import WhatsAppAdapter

WHATSAPP = WhatsAppAdapter()
MESSENGER = MessengerAdapter()
INSTAGRAM = InstagramAdapter()
ADAPTERS = (WHATSAPP, MESSENGER, INSTAGRAM)


def register_meta() -> None:
    """Register the three Meta kinds (idempotent)."""
    for adapter in ADAPTERS:
        registry.register(adapter)
