"""Audit API: list events (filters, cursor pages) and export with a signed manifest."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from accounts.permissions import StepUpFresh
from audit import access, selectors
from audit.catalogue import ACTIONS
from audit.export import FORMATS
from audit.hashing import EXPORTED_FIELDS
from audit.models import AuditEvent, Outcome
from audit.services import export_archive


class CanViewAudit(BasePermission):
    def has_permission(self, request, view) -> bool:
        return access.can(request, access.VIEW)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", *EXPORTED_FIELDS]
        read_only_fields = fields


class EventQuerySerializer(serializers.Serializer):
    actor = serializers.CharField(required=False, max_length=200)
    action = serializers.ChoiceField(required=False, choices=sorted(ACTIONS))
    outcome = serializers.ChoiceField(required=False, choices=Outcome.values)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class AuditEventListView(generics.ListAPIView):
    permission_classes = [CanViewAudit]
    required_permission = access.VIEW
    serializer_class = AuditEventSerializer

    @extend_schema(
        parameters=[EventQuerySerializer], summary="Audit events, newest first (cursor pages)"
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = EventQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.event_list(selectors.EventFilter(**query.validated_data))


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS, default="jsonl")
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    # The same narrowing as the event list (the manifest names it; "contiguous": false).
    actor = serializers.CharField(required=False, max_length=200)
    action = serializers.ChoiceField(required=False, choices=sorted(ACTIONS))
    outcome = serializers.ChoiceField(required=False, choices=Outcome.values)

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError("'since' must be before 'until'.")
        return attrs


class AuditExportView(APIView):
    permission_classes = [CanViewAudit, StepUpFresh]
    required_permission = access.VIEW

    @extend_schema(
        request=ExportRequestSerializer,
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
        summary="Export the audit trail: a ZIP with the file, its signed manifest and the public key",
    )
    def post(self, request):
        from django.db import connection
        from django.http import HttpResponse

        body = ExportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        label = "platform" if connection.schema_name == "public" else request.tenant.slug
        data = body.validated_data
        archive, manifest = export_archive(
            fmt=data["format"],
            since=data.get("since"),
            until=data.get("until"),
            filters=selectors.EventFilter(
                actor=data.get("actor", ""),
                action=data.get("action", ""),
                outcome=data.get("outcome", ""),
            ),
            tenant_label=label,
        )
        response = HttpResponse(archive, content_type="application/zip")
        response["Content-Disposition"] = (
            f'attachment; filename="audit-{label}-{manifest["last_seq"] or 0}.zip"'
        )
        return response
