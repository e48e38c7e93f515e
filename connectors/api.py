"""Credential API: write-only secrets. Responses carry metadata and the last 4 characters at most."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasPolicyPermission, StepUpFresh
from accounts.policy import Perm
from connectors import selectors, services
from connectors.models import Credential


class CredentialSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(
        write_only=True, max_length=services.MAX_SECRET, trim_whitespace=False
    )
    rotation_overdue = serializers.SerializerMethodField()

    class Meta:
        model = Credential
        fields = [
            "id",
            "name",
            "kind",
            "connector",
            "secret",
            "last4",
            "created_at",
            "rotated_at",
            "rotation_due_at",
            "rotation_overdue",
            "last_used_at",
            "use_count",
        ]
        read_only_fields = [f for f in fields if f not in ("name", "kind", "connector", "secret")]
        extra_kwargs = {
            "use_count": {
                "help_text": "How many times the secret was decrypted (each a credential.used "
                "audit event). A channel's secrets, used on every event, are decrypted at "
                "most once a minute per process."
            },
            "last_used_at": {
                "help_text": "When the secret was last decrypted (for a secret in constant "
                "use, at most a minute ago)."
            },
        }

    def validate_connector(self, value: str) -> str:
        if not services.CONNECTOR_RE.match(value):
            raise serializers.ValidationError(
                "Use 2-40 lowercase letters, digits, '-' or '_' (e.g. whatsapp)."
            )
        return value

    def get_rotation_overdue(self, credential) -> bool:
        return credential.rotation_due_at <= timezone.now()

    def create(self, validated_data):
        return services.credential_set(**validated_data)


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(
        write_only=True, max_length=services.MAX_SECRET, trim_whitespace=False
    )


class CredentialListView(generics.ListCreateAPIView):
    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE
    serializer_class = CredentialSerializer

    def get_queryset(self):
        return selectors.credential_list()


class CredentialDetailView(APIView):
    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE

    @extend_schema(
        responses=CredentialSerializer, summary="A credential's metadata (never its secret)"
    )
    def get(self, request, credential_id: int):
        return Response(
            CredentialSerializer(selectors.credential_get(credential_id=credential_id)).data
        )

    @extend_schema(
        request=SecretSerializer,
        responses=CredentialSerializer,
        summary="Replace (rotate) the secret",
    )
    def put(self, request, credential_id: int):
        credential = selectors.credential_get(credential_id=credential_id)
        body = SecretSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.credential_replace(credential=credential, secret=body.validated_data["secret"])
        return Response(CredentialSerializer(credential).data)

    @extend_schema(responses={204: None}, summary="Delete the credential")
    def delete(self, request, credential_id: int):
        services.credential_delete(credential=selectors.credential_get(credential_id=credential_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CredentialTestView(APIView):
    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE

    @extend_schema(
        request=None, responses={200: dict}, summary="Check that the stored secret decrypts"
    )
    def post(self, request, credential_id: int):
        ok = services.credential_test(
            credential=selectors.credential_get(credential_id=credential_id)
        )
        return Response({"ok": ok})
