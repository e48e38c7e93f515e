"""Channel endpoints: list, create (API, Meta and web chat kinds), rotate, a web
chat's allowed sites. An API channel's
signing secret appears in the response to create and rotate only, never in a
list or anywhere else; a Meta channel's secrets are write-only (their last four
characters are the only trace, ``secret_hints``)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasPolicyPermission, StepUpFresh
from accounts.policy import Perm
from connectors import channels
from connectors.models import Channel
from connectors.webchat import services as webchat
from parley.api import IntegerField, StringField


class ChannelInboxSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ChannelSerializer(serializers.ModelSerializer):
    # A plain string: keeps the schema's enum names free of collisions.
    kind = serializers.CharField(
        read_only=True,
        help_text='The channel kind: "api", "webchat", "whatsapp", "messenger", "instagram".',
    )
    meta_app = serializers.SerializerMethodField()
    routing_id = serializers.SerializerMethodField()
    health = serializers.CharField(read_only=True)
    last_error_code = serializers.CharField(read_only=True)
    secret_hints = serializers.SerializerMethodField()
    outbound_url = serializers.SerializerMethodField()
    inbox = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField()
    allowed_origins = serializers.SerializerMethodField()
    widget_script = serializers.SerializerMethodField()
    secret_last4 = serializers.CharField(source="signing_credential.last4", read_only=True)
    secret_rotated_at = serializers.DateTimeField(
        source="signing_credential.rotated_at", read_only=True
    )
    secret_rotation_due_at = serializers.DateTimeField(
        source="signing_credential.rotation_due_at", read_only=True
    )

    class Meta:
        model = Channel
        fields = [
            "id",
            "name",
            "kind",
            "public_id",
            "webhook_url",
            "outbound_url",
            "allowed_origins",
            "widget_script",
            "enabled",
            "inbox",
            "secret_last4",
            "secret_rotated_at",
            "secret_rotation_due_at",
            "meta_app",
            "routing_id",
            "secret_hints",
            "health",
            "last_error_code",
            "created_at",
        ]
        read_only_fields = fields

    def get_meta_app(self, channel) -> str:
        """Meta kinds: "own" (the tenant's app) or "shared" (the platform's); else ""."""
        if channel.kind not in channels.META_KINDS:
            return ""
        return "shared" if channels.channel_is_shared(channel) else "own"

    def get_routing_id(self, channel) -> str:
        """Meta kinds: the phone-number, page or Instagram account id."""
        setting = channels.ROUTING_SETTINGS.get(channel.kind, "")
        return str((channel.settings or {}).get(setting, "")) if setting else ""

    @extend_schema_field(
        {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "role → last 4 characters",
        }
    )
    def get_secret_hints(self, channel) -> dict:
        return channels.channel_secret_hints(channel)

    @extend_schema(responses=ChannelInboxSerializer(allow_null=True))
    def get_inbox(self, channel) -> dict | None:
        inbox = getattr(channel, "inbox", None)
        return {"id": inbox.pk, "name": inbox.name} if inbox else None

    def get_outbound_url(self, channel) -> str:
        return str((channel.settings or {}).get("outbound_url", ""))

    def get_webhook_url(self, channel) -> str:
        """Where the channel's events are posted ("" for a web chat: its widget posts them)."""
        if channel.kind == webchat.KIND:
            return ""
        return channels.channel_webhook_url(channel, self.context.get("request"))

    def get_allowed_origins(self, channel) -> list[str]:
        """Web chat: the sites that may embed the widget; other kinds: []."""
        return webchat.allowed_origins_of(channel) if channel.kind == webchat.KIND else []

    def get_widget_script(self, channel) -> str:
        """Web chat: the one script tag to put on those sites; other kinds: ""."""
        request = self.context.get("request")
        if channel.kind != webchat.KIND or request is None:
            return ""
        return webchat.widget_snippet(channel, request)


class ChannelWithSecretSerializer(ChannelSerializer):
    signing_secret = serializers.SerializerMethodField()

    class Meta(ChannelSerializer.Meta):
        fields = [*ChannelSerializer.Meta.fields, "signing_secret"]
        read_only_fields = fields

    def get_signing_secret(self, channel) -> str:
        """Shown in this response only: store it now."""
        return self.context["signing_secret"]


class MetaSecretsSerializer(serializers.Serializer):
    """Write-only: stored vaulted, never returned (only ``secret_hints``)."""

    app_secret = StringField(max_length=4096, required=False, write_only=True)
    access_token = StringField(max_length=4096, required=False, write_only=True)
    verify_token = StringField(max_length=4096, required=False, write_only=True)


class ChannelCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    kind = serializers.ChoiceField(
        choices=["api", *channels.META_KINDS, webchat.KIND],
        default="api",
        help_text="api (custom integration), a Meta kind, or webchat (the website widget).",
    )
    allowed_origins = serializers.ListField(
        child=StringField(max_length=300),
        required=False,
        max_length=webchat.MAX_ORIGINS,
        help_text="webchat: the sites that embed the widget, like https://shop.example.com.",
    )
    outbound_url = serializers.CharField(
        max_length=500, required=False, default="", help_text="api: where replies are POSTed."
    )
    settings = serializers.DictField(
        child=StringField(max_length=500),
        required=False,
        help_text="Meta kinds: phone_number_id | page_id | account_id, optionally meta_app "
        '("own" or "shared"), graph_base_url, api_version.',
    )
    secrets = MetaSecretsSerializer(
        required=False,
        help_text="Meta kinds on their own app: app_secret, access_token, verify_token. "
        "On the shared app: an optional access_token.",
    )
    inbox_id = IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="An inbox without a channel; omit or null to create an inbox with the "
        "channel's name (needs inboxes.manage).",
    )


class ChannelListView(generics.ListAPIView):
    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE
    serializer_class = ChannelSerializer

    def get_queryset(self):
        return channels.channel_list()

    @extend_schema(summary="Channels: kind, webhook URL, inbox, health (never a secret)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=ChannelCreateSerializer,
        responses={201: ChannelWithSecretSerializer},
        summary="Create a channel (an API channel's signing secret is in this response only)",
    )
    def post(self, request):
        body = ChannelCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = dict(body.validated_data)
        kind = values["kind"]
        if kind == webchat.KIND:
            channel = webchat.webchat_channel_create(
                by=request.user,
                name=values["name"],
                allowed_origins=values.get("allowed_origins") or [],
                inbox_id=values.get("inbox_id"),
            )
            channel = channels.channel_get(channel_id=channel.pk)
            data = ChannelSerializer(channel, context={"request": request}).data
            return Response(data, status=status.HTTP_201_CREATED)
        if kind != "api":
            channel, _ = channels.channel_create(
                by=request.user,
                name=values["name"],
                kind=kind,
                inbox_id=values.get("inbox_id"),
                settings=values.get("settings") or {},
                secrets_given=dict(values.get("secrets") or {}),
            )
            data = ChannelSerializer(channel, context={"request": request}).data
            return Response(
                data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"}
            )
        channel, secret = channels.channel_create(
            by=request.user,
            name=values["name"],
            outbound_url=values["outbound_url"],
            inbox_id=values.get("inbox_id"),
        )
        data = ChannelWithSecretSerializer(
            channel, context={"request": request, "signing_secret": secret}
        ).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


class ChannelRotateView(APIView):
    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE

    @extend_schema(
        request=None,
        responses=ChannelWithSecretSerializer,
        summary="Replace the signing secret (the new one is in this response only)",
    )
    def post(self, request, channel_id: int):
        channel = channels.channel_get(channel_id=channel_id)
        secret = channels.channel_secret_rotate(by=request.user, channel=channel)
        channel = channels.channel_get(channel_id=channel.pk)
        data = ChannelWithSecretSerializer(
            channel, context={"request": request, "signing_secret": secret}
        ).data
        return Response(data, headers={"Cache-Control": "no-store"})


class WebchatOriginsSerializer(serializers.Serializer):
    allowed_origins = serializers.ListField(
        child=StringField(max_length=300),
        max_length=webchat.MAX_ORIGINS,
        help_text="Every site that may embed the widget (replaces the list).",
    )


class ChannelOriginsView(APIView):
    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE

    @extend_schema(
        request=WebchatOriginsSerializer,
        responses=ChannelSerializer,
        summary="A web chat's allowed sites (CORS and frame-ancestors follow at once)",
    )
    def put(self, request, channel_id: int):
        body = WebchatOriginsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        channel = channels.channel_get(channel_id=channel_id)
        if channel.kind != webchat.KIND:
            raise ValidationError({"channel": "Only a web chat has allowed sites."})
        webchat.webchat_origins_set(
            by=request.user, channel=channel, allowed_origins=body.validated_data["allowed_origins"]
        )
        channel = channels.channel_get(channel_id=channel.pk)
        return Response(ChannelSerializer(channel, context={"request": request}).data)


class ChannelInboxesView(APIView):
    """The inboxes a new channel may bind (``inbox_id`` of create): those without a
    channel. For integrators, who bind an inbox but may not list the inboxes."""

    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE

    @extend_schema(
        responses=ChannelInboxSerializer(many=True),
        summary="Inboxes without a channel (what a new channel's inbox_id may name)",
    )
    def get(self, request):
        inboxes = channels.inboxes_unbound().only("id", "name")
        return Response([{"id": inbox.pk, "name": inbox.name} for inbox in inboxes])
