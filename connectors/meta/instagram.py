"""Instagram messaging webhooks (``object: instagram``) and sends.

Same ``messaging[]`` dialect as Messenger (see ``connectors.meta.messenger``):
``entry[].id`` is the Instagram professional account (the routing key),
senders are IGSIDs, read receipts name the message (``read.mid``), and an
unsent message arrives as ``is_deleted`` (kept as unsupported, raw type
``deleted``). Story mentions, shares and reels are unsupported kinds.

Outbound: ``POST /{version}/{account_id}/messages`` (``/me/messages`` when no
account id is set), with ``graph_base_url`` pointing at graph.facebook.com
(Instagram API with Facebook Login, a page token) or graph.instagram.com
(Instagram Login, an Instagram user token). Texts up to 1000 characters;
image, video and audio attachments.
"""

from __future__ import annotations

from connectors.meta.messenger import PageMessagingAdapter


class InstagramAdapter(PageMessagingAdapter):
    kind = "instagram"
    label = "Instagram"
    object_name = "instagram"
    account_setting = "account_id"
    text_limit = 1000
    send_media_types = ("image", "video", "audio")
    SETTINGS = ("account_id", "graph_base_url", "api_version", "meta_app")
