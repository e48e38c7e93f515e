"""AI provider endpoints: list, create, get, update, delete, test. The API key is
write-only (``api_key`` in requests; responses carry ``key_last4`` at most)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasPolicyPermission, StepUpFresh
from accounts.policy import Perm
from connectors.ai import selectors, services
from connectors.models import AiProvider
from connectors.services import MAX_SECRET
from parley.api import IntegerField, StrictBooleanField, StringField


class AiProviderSerializer(serializers.ModelSerializer):
    key_last4 = serializers.CharField(
        source="api_key.last4", read_only=True, help_text="The API key's last 4 characters."
    )

    class Meta:
        model = AiProvider
        fields = [
            "id",
            "name",
            "base_url",
            "model",
            "enabled",
            "timeout_seconds",
            "max_tokens",
            "key_last4",
            "health",
            "last_error_code",
            "last_error_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AiProviderWriteSerializer(serializers.Serializer):
    name = StringField(max_length=80)
    base_url = StringField(
        max_length=services.MAX_BASE_URL,
        help_text="https://… (http only for a loopback host outside production); "
        "we POST to {base_url}/chat/completions.",
    )
    model = StringField(max_length=100)
    api_key = StringField(
        max_length=MAX_SECRET, write_only=True, trim_whitespace=False, help_text="Write-only."
    )
    enabled = StrictBooleanField(required=False)
    timeout_seconds = IntegerField(
        required=False, min_value=services.TIMEOUT_MIN, max_value=services.TIMEOUT_MAX
    )
    max_tokens = IntegerField(
        required=False, min_value=services.MAX_TOKENS_MIN, max_value=services.MAX_TOKENS_MAX
    )


class AiProviderTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    code = serializers.CharField(help_text='"ok" or why not: auth, timeout, unavailable …')
    http_status = serializers.IntegerField(allow_null=True)


class AiProviderListView(APIView):
    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE

    @extend_schema(responses=AiProviderSerializer(many=True), summary="AI providers (never a key)")
    def get(self, request):
        return Response(AiProviderSerializer(selectors.ai_provider_list(), many=True).data)

    @extend_schema(
        request=AiProviderWriteSerializer,
        responses={201: AiProviderSerializer},
        summary="Configure an OpenAI-compatible provider (the key is vaulted, write-only)",
    )
    def post(self, request):
        body = AiProviderWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        provider = services.ai_provider_create(by=request.user, **body.validated_data)
        return Response(AiProviderSerializer(provider).data, status=status.HTTP_201_CREATED)


class AiProviderDetailView(APIView):
    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE

    @extend_schema(responses=AiProviderSerializer, summary="An AI provider (never its key)")
    def get(self, request, provider_id: int):
        return Response(
            AiProviderSerializer(selectors.ai_provider_get(provider_id=provider_id)).data
        )

    @extend_schema(
        request=AiProviderWriteSerializer(partial=True),
        responses=AiProviderSerializer,
        summary="Change fields; a new api_key replaces the stored one",
    )
    def patch(self, request, provider_id: int):
        provider = selectors.ai_provider_get(provider_id=provider_id)
        body = AiProviderWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        provider = services.ai_provider_update(
            by=request.user, provider=provider, **body.validated_data
        )
        return Response(
            AiProviderSerializer(selectors.ai_provider_get(provider_id=provider.pk)).data
        )

    @extend_schema(responses={204: None}, summary="Delete the provider and its key")
    def delete(self, request, provider_id: int):
        provider = selectors.ai_provider_get(provider_id=provider_id)
        services.ai_provider_delete(by=request.user, provider=provider)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AiProviderTestView(APIView):
    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE

    @extend_schema(
        request=None,
        responses=AiProviderTestSerializer,
        summary="One short chat completion with the stored key; records the provider's health",
    )
    def post(self, request, provider_id: int):
        provider = selectors.ai_provider_get(provider_id=provider_id)
        result = services.ai_provider_test(by=request.user, provider=provider)
        return Response({"ok": result.ok, "code": result.code, "http_status": result.http_status})
