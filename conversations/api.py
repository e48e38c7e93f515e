"""Inbox API: the inboxes the caller may work (others answer 404)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers

from accounts.permissions import HasPolicyPermission
from accounts.policy import Perm
from conversations import access
from conversations.models import Inbox


class InboxSerializer(serializers.ModelSerializer):
    class Meta:
        model = Inbox
        fields = ["id", "name", "created_at"]
        read_only_fields = fields


class InboxListView(generics.ListAPIView):
    permission_classes = [HasPolicyPermission]
    required_permission = Perm.INBOX_USE
    serializer_class = InboxSerializer

    def get_queryset(self):
        return access.inbox_list_for_user(self.request.user)


class InboxDetailView(generics.RetrieveAPIView):
    permission_classes = [HasPolicyPermission]
    required_permission = Perm.INBOX_USE
    serializer_class = InboxSerializer

    @extend_schema(summary="One inbox the caller may work (404 otherwise)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_object(self):
        return access.inbox_get_for_user(self.request.user, self.kwargs["inbox_id"])
