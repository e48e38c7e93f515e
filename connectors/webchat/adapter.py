"""The web chat kind in the channel registry.

Web chat has no webhook and sends nothing over HTTP: a visitor's message comes
in through the widget's own endpoints (``connectors.webchat.views``, a signed
visitor token instead of a signature), and a reply waits until the visitor's
poll fetches it, which marks it delivered. So this adapter refuses every
webhook and its ``send`` makes no request: it tells the delivery seam that the
message is waiting for the visitor (``PULL``). Pure, like every adapter: no
model, no tenant, no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.adapters import registry
from connectors.adapters.base import (
    ChannelAdapter,
    DeliveryResult,
    OutboundMessage,
    ParsedEvent,
    PayloadInvalid,
)
from connectors.adapters.http import HttpCall

KIND = "webchat"
AWAITING_VISITOR = "awaiting_visitor"  # the delivery outcome the seam reports for PULL kinds


class WebchatAdapter(ChannelAdapter):
    kind = KIND
    label = "Web chat"
    SETTINGS = ("allowed_origins", "token_epoch")
    SECRETS = ()
    # The delivery seam leaves a PULL kind's reply queued (never failed, never
    # retried): the visitor's poll delivers it.
    PULL = True

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
        return False  # no webhook: visitors authenticate with tokens, not signatures

    def parse_document(self, document: Any) -> ParsedEvent:
        raise PayloadInvalid("webhook_unsupported")

    def send(
        self,
        message: OutboundMessage,
        settings: Mapping[str, str],
        secrets: Mapping[str, str],
        http: HttpCall,
    ) -> DeliveryResult:
        # Nothing leaves Parley: the reply is already stored where the visitor's
        # poll reads it. No external id (status updates come from the poll).
        return DeliveryResult(external_id="", recipient_id=message.recipient_id)


ADAPTER = WebchatAdapter()


def register_webchat() -> None:
    """Register the web chat kind (idempotent)."""
    registry.register(ADAPTER)
