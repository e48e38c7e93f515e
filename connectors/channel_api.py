"""API channel endpoints: list, create, rotate. The signing secret appears in the
response to create and rotate only, never in a list or anywhere else."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasPolicyPermission, StepUpFresh
from accounts.policy import Perm
from connectors import channels
from connectors.models import Channel
from parley.api import IntegerField


class ChannelInboxSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ChannelSerializer(serializers.ModelSerializer):
    # A plain string (only "api" so far): keeps the schema's enum names free of collisions.
    kind = serializers.CharField(read_only=True, help_text='The channel kind, e.g. "api".')
    outbound_url = serializers.SerializerMethodField()
    inbox = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField()
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
            "enabled",
            "inbox",
            "secret_last4",
            "secret_rotated_at",
            "secret_rotation_due_at",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema(responses=ChannelInboxSerializer(allow_null=True))
    def get_inbox(self, channel) -> dict | None:
        inbox = getattr(channel, "inbox", None)
        return {"id": inbox.pk, "name": inbox.name} if inbox else None

    def get_outbound_url(self, channel) -> str:
        return str((channel.settings or {}).get("outbound_url", ""))

    def get_webhook_url(self, channel) -> str:
        path = channels.webhook_path(channel)
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class ChannelWithSecretSerializer(ChannelSerializer):
    signing_secret = serializers.SerializerMethodField()

    class Meta(ChannelSerializer.Meta):
        fields = [*ChannelSerializer.Meta.fields, "signing_secret"]
        read_only_fields = fields

    def get_signing_secret(self, channel) -> str:
        """Shown in this response only: store it now."""
        return self.context["signing_secret"]


class ChannelCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    outbound_url = serializers.CharField(max_length=500)
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

    @extend_schema(summary="API channels: webhook URL, outbound URL, inbox (never the secret)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=ChannelCreateSerializer,
        responses={201: ChannelWithSecretSerializer},
        summary="Create an API channel (the signing secret is in this response only)",
    )
    def post(self, request):
        body = ChannelCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        channel, secret = channels.channel_create(by=request.user, **body.validated_data)
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
