"""Channels: create, configure, rotate secrets, pause; read them for pages and webhooks.

Generic over the channel kinds of ``connectors.adapters.registry``: a kind's
settings are checked by the validator registered for it here
(:data:`SETTINGS_CLEANERS`), its secrets are ``Credential`` rows linked by role
(``ChannelCredential``). The API and Meta kinds are created here; a web chat
(no secrets) by ``connectors.webchat.services.webchat_channel_create``.

The API channel's signature helpers live in ``connectors.api_channel.adapter``
and are re-exported here for the callers that sign test events with them.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Prefetch
from django.http import Http404

from accounts.policy import Perm, user_has
from audit.services import record
from connectors.adapters import registry
from connectors.adapters.base import DeliveryError
from connectors.adapters.http import HttpTransportError, outbound_http
from connectors.api_channel.adapter import (  # noqa: F401 - re-exported
    SIGNATURE_HEADER,
    TOLERANCE_SECONDS,
    SignatureError,
    canonical_json,
    signature_header,
    signature_verify,
)
from connectors.health import channel_actor, channel_health_failed, channel_health_ok
from connectors.meta import common as meta_common
from connectors.models import Channel, ChannelCredential, Credential, InboundEvent
from connectors.services import credential_replace, credential_set, credential_use
from connectors.webchat.services import webchat_settings_clean
from conversations.access import inbox_create
from conversations.models import Inbox
from conversations.services import template_language_clean, template_name_clean
from parley import outbound, rows
from parley.base_url import console_url
from tenants import services as tenant_services

logger = logging.getLogger(__name__)

CONNECTOR = "api-channel"
MAX_ATTEMPTS = 5  # delivery attempts per outbound message, the first one included


def channel_secrets(
    channel: Channel, *, purpose: str, roles=None, reuse: bool = False
) -> dict[str, str]:
    """Decrypt the channel's secrets (each decryption audited) for one call; drop them after.

    ``reuse``: for secrets used on every event (verifying webhooks, sending
    replies), a decryption of the same ciphertext by this process in the last
    minute may serve (``connectors.services.credential_use``)."""
    actor = channel_actor(channel)
    out = {}
    for link in channel.credential_links.all():
        if roles is None or link.role in roles:
            out[link.role] = credential_use(
                credential=link.credential, purpose=purpose, actor=actor, reuse=reuse
            )
    return out


# --- reads ------------------------------------------------------------------------------------


def _links() -> Prefetch:
    return Prefetch(
        "credential_links",
        queryset=ChannelCredential.objects.select_related("credential").defer(
            "credential__secret_ct"
        ),
    )


def channel_with_inbox(*, channel_id: int) -> Channel:
    """The channel and its inbox (``channel.inbox``, None when unbound), in one prepared
    statement: the worker reads it for each drain of inbound events, and the ORM's
    select_related cost more CPU to build than PostgreSQL spent on it. Raises
    ``Channel.DoesNotExist`` as ``get()`` would."""
    sql, names = _channel_with_inbox_sql()
    with rows.prepared_cursor() as cursor:
        cursor.execute(sql, [channel_id])
        found = cursor.fetchone()
    if found is None:
        raise Channel.DoesNotExist(f"No channel {channel_id}.")
    split = len(names[0])
    channel = rows.from_row(Channel, names[0], found[:split])
    inbox = None if found[split] is None else rows.from_row(Inbox, names[1], found[split:])
    _attach_inbox(channel, inbox)
    return channel


def _attach_inbox(channel: Channel, inbox: Inbox | None) -> None:
    """``channel.inbox`` (and ``inbox.channel``) as select_related would leave them."""
    if inbox is not None:
        Inbox._meta.get_field("channel").set_cached_value(inbox, channel)
    Channel._meta.get_field("inbox").set_cached_value(channel, inbox)


@functools.cache
def _channel_with_inbox_sql() -> tuple[str, tuple[tuple[str, ...], ...]]:
    names = (rows.all_fields(Channel), rows.all_fields(Inbox))
    q = connection.ops.quote_name
    ch, ib = q(Channel._meta.db_table), q(Inbox._meta.db_table)
    sql = (
        f"SELECT {rows.columns(Channel, names[0])}, {rows.columns(Inbox, names[1])} "  # noqa: S608 - names from _meta
        f"FROM {ch} LEFT JOIN {ib} ON {ib}.{q('channel_id')} = {ch}.{q('id')} "
        f"WHERE {ch}.{q('id')} = %s"
    )
    return sql, names


def channel_list():
    return Channel.objects.select_related("inbox").prefetch_related(_links()).order_by("name")


def channel_get(*, channel_id) -> Channel:
    try:
        channel_id = int(channel_id)
    except (TypeError, ValueError):
        raise Http404 from None
    channel = channel_list().filter(pk=channel_id).first()
    if channel is None:
        raise Http404("No such channel.")
    return channel


def channel_for_webhook(*, kind: str, public_id: str) -> Channel | None:
    """The enabled channel of ``kind`` behind a webhook URL, in the request's tenant (None otherwise).

    Its credentials come with it, with their ciphertext (the signature check
    decrypts one, or finds this process's recent decryption of that same
    ciphertext), and, for a kind that answers in the request (the API kind), its
    inbox. Every webhook of every channel starts here: one statement, written out
    (the ORM's select_related plus prefetch cost two queries and more CPU to build
    than PostgreSQL spent on them). Only the columns a webhook uses are read
    (:data:`WEBHOOK_FIELDS`); the others are deferred, as with ``only()``: read
    on access, one query each.

    The same statement reserves the id of the event the request may store
    (``channel.reserved_event_id``, for ``inbound.inbound_event_store``): the
    ciphertext names its row, so the id comes before the INSERT, and taking it here
    spares the webhook a round trip. A request refused later leaves a gap in the
    sequence, as a repeat already does."""
    if not public_id or len(public_id) > 32 or kind not in registry.kinds():
        return None
    with_inbox = registry.get(kind).answers_inline
    sql, read = _webhook_sql(connection.schema_name, with_inbox)
    with rows.prepared_cursor(own_schema=True) as cursor:
        cursor.execute(sql, [public_id, kind])
        found = cursor.fetchall()
    if not found:
        return None
    channel = _channel_from_rows(found, read)
    channel.reserved_event_id = found[0][-1]
    return channel


# What a webhook reads of its channel and credentials: the rest (timestamps shown on
# pages, use counts) stays deferred. Each skipped column is one value less for
# PostgreSQL to send and psycopg to parse (a timestamp costs a Python parse) on
# every event. The inbox comes whole, and only for kinds that answer in the request.
WEBHOOK_FIELDS = {
    Channel: {"id", "name", "kind", "public_id", "settings", "enabled", "health", "last_event_at"},
    Credential: {"id", "name", "kind", "connector", "secret_ct", "last4"},
}


def _webhook_names(model) -> tuple[str, ...]:
    """The attnames a webhook reads of ``model``, in the model's field order (``from_db``'s)."""
    keep = WEBHOOK_FIELDS.get(model)
    return tuple(name for name in rows.all_fields(model) if keep is None or name in keep)


@functools.lru_cache(maxsize=512)
def _webhook_sql(
    schema: str, with_inbox: bool
) -> tuple[str, tuple[tuple[type, tuple[str, ...]], ...]]:
    """The statement for the tenant ``schema`` and the columns it reads, model by model:
    it names its tables' schema, so it runs without django-tenants' ``SET
    search_path`` (parley.rows.prepared_cursor)."""
    models_ = (
        (Channel, Inbox, ChannelCredential, Credential)
        if with_inbox
        else (Channel, ChannelCredential, Credential)
    )
    read = tuple((model, _webhook_names(model)) for model in models_)
    q = connection.ops.quote_name
    ch, ib, ln, cr = (
        q(model._meta.db_table) for model in (Channel, Inbox, ChannelCredential, Credential)
    )
    # Each table under its own name: the column lists (rows.columns) read "table"."col".
    at = {
        model: f"{rows.tenant_table(model, schema)} AS {q(model._meta.db_table)}"
        for model in models_
    }
    select = ", ".join(rows.columns(model, names) for model, names in read)
    events = rows.tenant_table(InboundEvent, schema).replace("'", "''")
    inbox = (
        f"LEFT JOIN {at[Inbox]} ON {ib}.{q('channel_id')} = {ch}.{q('id')} " if with_inbox else ""
    )
    sql = (
        # A CTE with a volatile call is evaluated once, however many rows join it.
        f"WITH {q('reserved')} AS MATERIALIZED (SELECT nextval(pg_get_serial_sequence("  # noqa: S608 - names from _meta and the tenant's checked schema
        f"'{events}', 'id')) AS {q('id')}) "
        f"SELECT {select}, {q('reserved')}.{q('id')} FROM {at[Channel]} CROSS JOIN {q('reserved')} "
        f"{inbox}"
        f"LEFT JOIN {at[ChannelCredential]} ON {ln}.{q('channel_id')} = {ch}.{q('id')} "
        f"LEFT JOIN {at[Credential]} ON {cr}.{q('id')} = {ln}.{q('credential_id')} "
        f"WHERE {ch}.{q('id')} = (SELECT {q('id')} FROM {rows.tenant_table(Channel, schema)} "
        f"WHERE {q('public_id')} = %s AND {q('kind')} = %s AND {q('enabled')} "
        f"ORDER BY {q('id')} LIMIT 1) "
        f"ORDER BY {ln}.{q('id')}"
    )
    return sql, read


def _channel_from_rows(found: list, read: tuple[tuple[type, tuple[str, ...]], ...]) -> Channel:
    """The channel of the joined rows (one per credential link), its links (each with
    its credential) and, when read, its inbox attached as prefetch_related and
    select_related would: ``channel.credential_links.all()`` and ``channel.inbox``
    read no more."""
    spans, start = {}, 0
    for model, names in read:
        spans[model] = (names, start, start + len(names))
        start += len(names)

    def build(model, row):
        names, first, last = spans[model]
        return None if row[first] is None else rows.from_row(model, names, row[first:last])

    channel = build(Channel, found[0])
    if Inbox in spans:
        _attach_inbox(channel, build(Inbox, found[0]))
    links = []
    for row in found:
        link = build(ChannelCredential, row)
        if link is None:
            continue
        ChannelCredential._meta.get_field("credential").set_cached_value(
            link, build(Credential, row)
        )
        ChannelCredential._meta.get_field("channel").set_cached_value(link, channel)
        links.append(link)
    prefetched = ChannelCredential.objects.all()
    prefetched._result_cache, prefetched._prefetch_done = links, True
    channel._prefetched_objects_cache = {"credential_links": prefetched}
    return channel


def inboxes_unbound():
    """Inboxes a new channel may be bound to (names only matter to the channel form)."""
    return Inbox.objects.filter(channel__isnull=True).order_by("name")


def webhook_path(channel: Channel) -> str:
    return f"/webhooks/{channel.kind}/{channel.public_id}/"


def channel_webhook_url(channel: Channel, request=None) -> str:
    """Where the channel's events are posted: the shared app's one URL on the
    platform host, or the channel's own URL on the tenant's host."""
    if channel_is_shared(channel):
        return console_url(shared_webhook_path(channel.kind))
    path = webhook_path(channel)
    return request.build_absolute_uri(path) if request is not None else path


def channel_secret_hints(channel: Channel) -> dict[str, str]:
    """The last four characters of each secret by role (never more): for pages and the API."""
    return {link.role: link.credential.last4 for link in channel.credential_links.all()}


META_KINDS = ("whatsapp", "messenger", "instagram")


def shared_app_enabled() -> bool:
    return bool(getattr(django_settings, "PARLEY_META_SHARED_APP", False))


# --- changes ------------------------------------------------------------------------------------


def _require(by) -> None:
    if not user_has(by, Perm.CONNECTORS_MANAGE):
        raise PermissionDenied
    if getattr(by, "is_break_glass", False):
        raise PermissionDenied("Break-glass access is read-only.")


def outbound_url_clean(url: str) -> str:
    """A URL replies may be POSTed to: http(s) (https in production), no user info,
    and a host that passes ``parley.outbound``'s private-address guard."""
    url = (url or "").strip()
    field = "outbound_url"
    if not url:
        raise ValidationError({field: "Give the URL replies are POSTed to."})
    if len(url) > 500:
        raise ValidationError({field: "At most 500 characters."})
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValidationError({field: "The port is not a number from 1 to 65535."}) from None
    allowed = ("https",) if settings.PRODUCTION else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname:
        raise ValidationError(
            {field: "Use an https:// URL with a host name."}
            if settings.PRODUCTION
            else {field: "Use an http:// or https:// URL with a host name."}
        )
    if parts.username or parts.password:
        raise ValidationError(
            {field: "Leave credentials out of the URL: replies are signed instead."}
        )
    try:
        outbound.check_destination(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except outbound.OutboundError as exc:
        raise ValidationError({field: f"Refused: {exc}."}) from None
    return url


def _api_settings_clean(values: dict) -> dict:
    return {"outbound_url": outbound_url_clean(values.get("outbound_url", ""))}


def _meta_settings_clean(routing: str) -> Callable[[dict], dict]:
    def clean(values: dict) -> dict:
        out = {}
        app = values.get("meta_app") or "own"
        if app not in META_APPS:
            raise ValidationError(
                {"meta_app": "Either own (your Meta app) or shared (the platform's)."}
            )
        if app == "shared":
            # Only kept when shared: a channel without it uses its own app, as before.
            out["meta_app"] = "shared"
        try:
            out[routing] = meta_common.path_id(values.get(routing), routing)
        except DeliveryError:
            raise ValidationError(
                {routing: "Give the account id (letters, digits, _ . -)."}
            ) from None
        for key in ("graph_base_url", "api_version"):
            value = values.get(key)
            if value not in (None, ""):
                if not isinstance(value, str):
                    raise ValidationError({key: "A string."})
                out[key] = value.strip()
        try:
            meta_common.graph_url(out, "check")
        except DeliveryError:
            raise ValidationError(
                {
                    "settings": "graph_base_url is an http(s) URL without credentials; api_version like v21.0."
                }
            ) from None
        if routing == "phone_number_id":
            out.update(_reengagement_clean(values))
        base = out.get("graph_base_url")
        if base:
            parts = urlsplit(base)
            if settings.PRODUCTION and parts.scheme != "https":
                raise ValidationError({"graph_base_url": "Use https."})
            try:
                outbound.check_destination(
                    parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
                )
            except outbound.OutboundError as exc:
                raise ValidationError({"graph_base_url": f"Refused: {exc}."}) from None
        return out

    return clean


def _reengagement_clean(values: dict) -> dict:
    """WhatsApp's re-engagement template (offered after a 131047): both or neither."""
    name, language = values.get("reengagement_template"), values.get("reengagement_language")
    if name in (None, "") and language in (None, ""):
        return {}
    try:
        return {
            "reengagement_template": template_name_clean(name),
            "reengagement_language": template_language_clean(language),
        }
    except ValueError as exc:
        raise ValidationError({"reengagement_template": str(exc)}) from None


META_SECRETS = ("app_secret", "access_token", "verify_token")
# Which Meta app signs a channel's events: the tenant's own (a webhook URL and
# secrets per channel) or the platform's shared one (one URL, routed by account id).
META_APPS = ("own", "shared")
CREDENTIAL_KINDS = {
    "app_secret": Credential.Kind.WEBHOOK_SECRET,
    "access_token": Credential.Kind.ACCESS_TOKEN,
    "verify_token": Credential.Kind.WEBHOOK_SECRET,
}


def _meta_secrets_clean(given, *, shared: bool = False) -> dict[str, str]:
    """Own app: all three secrets. Shared app: the platform signs and verifies, so
    only the ``access_token`` is kept (it sends replies, and proves at creation
    that the workspace holds the account it routes)."""
    if given is None and shared:
        given = {}
    if not isinstance(given, dict):
        raise ValidationError({"secrets": "Give app_secret, access_token and verify_token."})
    roles = ("access_token",) if shared else META_SECRETS
    unknown = sorted(set(given) - set(roles))
    if unknown and any(given.get(role) for role in unknown):
        raise ValidationError(
            {"secrets": "A channel on the shared app takes only an access_token."}
            if shared
            else {"secrets": f"Unknown secrets: {', '.join(map(str, unknown))[:200]}."}
        )
    out = {}
    for role in roles:
        value = given.get(role)
        if not isinstance(value, str) or not value.strip():
            raise ValidationError({role: "Required."})
        if "\x00" in value or not value.strip().isprintable():
            raise ValidationError({role: "Printable characters only."})
        out[role] = value.strip()
    return out


def channel_is_shared(channel: Channel) -> bool:
    """Whether the platform's shared Meta app signs this channel's events."""
    return (channel.settings or {}).get("meta_app") == "shared"


def shared_webhook_path(kind: str) -> str:
    """The shared app's one URL per kind (on the platform host)."""
    return f"/webhooks/meta/{kind}/"


# The setting naming the account a kind's events are addressed to (the routing key).
ROUTING_SETTINGS = {
    "whatsapp": "phone_number_id",
    "messenger": "page_id",
    "instagram": "account_id",
}

# kind → function(settings) → cleaned settings (ValidationError otherwise). A kind
# without one here cannot be created or configured yet.
SETTINGS_CLEANERS: dict[str, Callable[[dict], dict]] = {
    "api": _api_settings_clean,
    "whatsapp": _meta_settings_clean("phone_number_id"),
    "messenger": _meta_settings_clean("page_id"),
    "instagram": _meta_settings_clean("account_id"),
    "webchat": webchat_settings_clean,
}


def channel_settings_clean(*, kind: str, values) -> dict:
    """The kind's settings, checked: unknown keys and kinds are refused."""
    cleaner = SETTINGS_CLEANERS.get(kind)
    if cleaner is None or kind not in registry.kinds():
        raise ValidationError({"kind": "This kind of channel cannot be configured here yet."})
    if not isinstance(values, dict):
        raise ValidationError({"settings": "Settings are an object."})
    adapter = registry.get(kind)
    unknown = sorted(set(values) - set(adapter.SETTINGS))
    if unknown:
        raise ValidationError({"settings": f"Unknown settings: {', '.join(unknown)[:200]}."})
    return cleaner(values)


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def channel_create(
    *,
    by,
    name: str,
    outbound_url: str = "",
    inbox_id: int | None = None,
    kind: str = "api",
    settings: dict | None = None,
    secrets_given: dict[str, str] | None = None,
) -> tuple[Channel, str]:
    """Create a channel bound to an inbox: ``(channel, secret to show once)``.

    ``api``: ``outbound_url``; a signing secret is generated and returned once
    (only its ciphertext is kept). Meta kinds: ``settings`` (the account id,
    optionally ``graph_base_url``/``api_version``) and ``secrets_given`` with
    ``app_secret``, ``access_token`` and ``verify_token``, stored vaulted; nothing
    is returned. ``inbox_id`` names an existing inbox without a channel; None
    creates an inbox of the same name (which needs ``inboxes.manage``).
    """
    _require(by)
    name = (name or "").strip()
    if not 1 <= len(name) <= 80:
        raise ValidationError({"name": "Give the channel a name of 1 to 80 characters."})
    if Channel.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": "A channel with this name exists."})
    if kind == "webchat":
        # No secrets and its own audit details: connectors.webchat.services.webchat_channel_create.
        raise ValidationError({"kind": "Create a web chat with the web chat form."})
    if kind == "api":
        channel_settings = channel_settings_clean(kind=kind, values={"outbound_url": outbound_url})
        outbound_url = channel_settings["outbound_url"]
    else:
        channel_settings = channel_settings_clean(kind=kind, values=settings or {})
        shared = channel_settings.get("meta_app") == "shared"
        if shared and not shared_app_enabled():
            raise ValidationError({"meta_app": "The platform's shared Meta app is not enabled."})
        given = _meta_secrets_clean(secrets_given, shared=shared)
        if shared:
            # Before anything is stored: the shared app routes by account id, so a
            # workspace must prove it holds the account, not merely name it first.
            _shared_account_proven(kind, channel_settings, given.get("access_token", ""))
    if inbox_id is None and not user_has(by, Perm.INBOXES_MANAGE):
        raise ValidationError(
            {"inbox": "Pick an existing inbox: only owners and admins create inboxes."}
        )
    public_id = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            if inbox_id is None:
                inbox = inbox_create(by=by, name=name)
            else:
                inbox = Inbox.objects.select_for_update().filter(pk=inbox_id).first()
                if inbox is None:
                    raise ValidationError({"inbox": "No such inbox."})
                if inbox.channel_id is not None:
                    raise ValidationError({"inbox": "This inbox already has a channel."})
            channel = Channel.objects.create(
                name=name, kind=kind, public_id=public_id, settings=channel_settings
            )
            if kind == "api":
                credential = credential_set(
                    name=f"channel-{public_id}",
                    kind=Credential.Kind.WEBHOOK_SECRET,
                    connector=CONNECTOR,
                    secret=secret,
                )
                links = {ChannelCredential.Role.SIGNING_SECRET: credential}
            else:
                links = {
                    role: credential_set(
                        name=f"channel-{public_id}-{role}".replace("_", "-"),
                        kind=CREDENTIAL_KINDS[role],
                        connector=kind,
                        secret=value,
                    )
                    for role, value in given.items()
                }
                secret = ""
            for role, credential in links.items():
                ChannelCredential.objects.create(channel=channel, role=role, credential=credential)
            Inbox.objects.filter(pk=inbox.pk).update(channel=channel)
            routed = {}
            if kind != "api" and channel_is_shared(channel):
                routing_id = channel_settings[ROUTING_SETTINGS[kind]]
                tenant_services.channel_route_claim(
                    kind=kind,
                    routing_id=routing_id,
                    schema_name=connection.schema_name,
                    public_id=public_id,
                )
                routed = {"meta_app": "shared", "routing_id": routing_id}
            record(
                "channel.created",
                target_type="channel",
                target_id=channel.pk,
                details={
                    "name": name,
                    "kind": channel.kind,
                    "public_id": public_id,
                    "inbox": inbox.pk,
                    "outbound_host": _host(outbound_url) if kind == "api" else "",
                    "credentials": {role: c.pk for role, c in links.items()},
                    **routed,
                },
            )
    except IntegrityError:
        # Another request bound the inbox or took the name meanwhile.
        raise ValidationError(
            {"name": "This name or inbox was just taken by another channel; try again."}
        ) from None
    return channel_get(channel_id=channel.pk), secret


def channel_secret_rotate(*, by, channel: Channel) -> str:
    """Replace the signing secret at once (the old one stops verifying); the new one, once."""
    _require(by)
    credential = channel.signing_credential
    if credential is None:
        raise ValidationError({"channel": "This channel has no signing secret to rotate."})
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        credential_replace(credential=credential, secret=secret)
        record(
            "channel.secret_rotated",
            target_type="channel",
            target_id=channel.pk,
            details={"name": channel.name, "credential": credential.pk},
        )
    return secret


def channel_set_enabled(*, by, channel: Channel, enabled: bool) -> Channel:
    """Pause a channel (its webhook answers 404, replies fail with "The channel is disabled") or resume it."""
    _require(by)
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk)
        if channel.enabled != enabled:
            channel.enabled = enabled
            channel.save(update_fields=["enabled"])
            routes = 0
            if channel_is_shared(channel):
                routes = tenant_services.channel_route_set_enabled(
                    schema_name=connection.schema_name,
                    public_id=channel.public_id,
                    enabled=enabled,
                )
            record(
                "channel.enabled" if enabled else "channel.disabled",
                target_type="channel",
                target_id=channel.pk,
                details={"name": channel.name, **({"routes": routes} if routes else {})},
            )
    return channel


# --- test connection ---------------------------------------------------------------------------------

TEST_TIMEOUT = 10.0  # seconds for the one Graph call


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    code: str  # "ok" or a DeliveryError code (auth_failed, network_error, rejected, ...)
    http_status: int | None = None
    auth_failed: bool = False  # the credentials or permissions were refused


def _shared_account_proven(kind: str, channel_settings: dict, access_token: str) -> None:
    """A channel on the shared app: ask the Graph API, with the workspace's own
    access token, for the account it names (``GET /{id}?fields=id``). Only an
    answer naming that very id proves the token reaches the account; anything
    else refuses the channel, so nobody routes another business's customers to
    themselves by claiming its id first. No secret or Meta text is echoed."""
    setting = ROUTING_SETTINGS[kind]
    routing_id = channel_settings[setting]
    refused = ValidationError(
        {
            setting: "Meta did not confirm that this access token reaches this account. "
            "Use a token of the business that owns it (from Meta's Business settings)."
        }
    )
    try:
        url = meta_common.graph_url(channel_settings, meta_common.path_id(routing_id, setting))
        authorization = meta_common.bearer({"access_token": access_token})
    except DeliveryError:
        raise refused from None
    try:
        reply = outbound_http(
            "GET",
            f"{url}?fields=id",
            json_body=None,
            headers={"Authorization": authorization, "Accept": "application/json"},
            timeout=TEST_TIMEOUT,
            purpose="channel.claim",
        )
    except HttpTransportError:
        raise ValidationError(
            {setting: "Meta could not be reached to confirm this account; try again."}
        ) from None
    try:
        answer = json.loads(reply.body) if 200 <= reply.status < 300 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or answer.get("id") != routing_id:
        with transaction.atomic():
            record(
                "channel.route_refused",
                outcome="denied",
                target_type="channel",
                target_id="",
                details={"kind": kind, "routing_id": routing_id, "http_status": reply.status},
            )
        raise refused


def _graph_probe(channel: Channel) -> ConnectionTest:
    """One GET to the Graph API with the channel's access token: WhatsApp
    ``/{phone_number_id}``, Messenger and Instagram ``/me``. Never raises a
    DeliveryError: the result says what failed (a code, never Meta's text)."""
    settings_ = channel.settings or {}
    try:
        if channel.kind == "whatsapp":
            path = meta_common.path_id(settings_.get("phone_number_id"), "phone_number_id")
        else:
            path = "me"
        url = meta_common.graph_url(settings_, path)
        keys = channel_secrets(channel, purpose="channel.test", roles=("access_token",))
        try:
            authorization = meta_common.bearer(keys)
        finally:
            del keys
        try:
            reply = outbound_http(
                "GET",
                url,
                json_body=None,
                headers={"Authorization": authorization, "Accept": "application/json"},
                timeout=TEST_TIMEOUT,
                purpose="channel.test",
            )
        except HttpTransportError as exc:
            return ConnectionTest(
                False, "network_error" if exc.transient else "destination_refused"
            )
        if 200 <= reply.status < 300:
            return ConnectionTest(True, "ok", reply.status)
        raise meta_common.classify(reply)
    except DeliveryError as exc:
        return ConnectionTest(False, exc.code, exc.http_status, exc.auth_failed)


def channel_test_connection(*, by, channel: Channel) -> ConnectionTest:
    """ "Test connection" for a Meta channel: one Graph call with its access token.
    Records the channel's health (ok, failing, or credentials refused) and audits
    the test (``channel.tested``: code and HTTP status, never a token or a body)."""
    _require(by)
    if channel.kind not in META_KINDS:
        raise ValidationError(
            {"channel": "Only WhatsApp, Messenger and Instagram channels are tested."}
        )
    result = _graph_probe(channel)
    if result.ok:
        channel_health_ok(channel=channel)
    else:
        channel_health_failed(
            channel_id=channel.pk,
            code=result.code,
            auth_failed=result.code
            in ("auth_failed", "credentials_missing", "credentials_invalid"),
        )
    with transaction.atomic():
        record(
            "channel.tested",
            outcome="allowed" if result.ok else "failed",
            target_type="channel",
            target_id=channel.pk,
            details={
                "name": channel.name,
                "kind": channel.kind,
                "code": result.code,
                "http_status": result.http_status,
            },
        )
    return result
