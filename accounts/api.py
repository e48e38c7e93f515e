"""Identity API: who am I, and the tenant's users (for those allowed)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasPolicyPermission
from accounts.policy import Perm, permissions_of
from accounts.selectors import user_list


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = [
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "role",
            "is_active",
            "last_login",
        ]
        read_only_fields = fields


class MeSerializer(UserSerializer):
    tenant = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "tenant", "permissions"]
        read_only_fields = fields

    def get_tenant(self, user) -> str:
        return self.context["request"].tenant.slug

    def get_permissions(self, user) -> list[str]:
        return permissions_of(user.role)


class MeView(APIView):
    permission_classes = [HasPolicyPermission]

    @extend_schema(
        responses=MeSerializer, summary="The signed-in user, their tenant and permissions"
    )
    def get(self, request):
        return Response(MeSerializer(request.user, context={"request": request}).data)


class UserListView(generics.ListAPIView):
    permission_classes = [HasPolicyPermission]
    required_permission = Perm.USERS_VIEW
    serializer_class = UserSerializer

    def get_queryset(self):
        return user_list()
