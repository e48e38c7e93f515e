"""Identity API: who am I, and the tenant's users (for those allowed)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.permissions import HasPolicyPermission, StepUpFresh
from accounts.policy import Perm, Role, permissions_of
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


class InviteSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)


class UserChangeSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)


def _as_api_errors(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(
        exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
    )


class UserListView(generics.ListAPIView):
    """The tenant's users; owners and admins invite new ones (step-up needed)."""

    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permissions = {"GET": Perm.USERS_VIEW, "POST": Perm.USERS_MANAGE}
    serializer_class = UserSerializer

    def get_queryset(self):
        return user_list()

    @extend_schema(
        request=InviteSerializer, responses={201: UserSerializer}, summary="Invite a user"
    )
    def post(self, request):
        data = InviteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            user = services.user_invite(by=request.user, request=request, **data.validated_data)
        except DjangoValidationError as exc:
            raise _as_api_errors(exc) from exc
        return Response(UserSerializer(user).data, status=201)


class UserDetailView(APIView):
    """One user; owners and admins change the role or deactivate (step-up needed)."""

    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permissions = {"GET": Perm.USERS_VIEW, "PATCH": Perm.USERS_MANAGE}

    def _user(self, user_id):
        return get_object_or_404(user_list(), pk=user_id)

    @extend_schema(responses=UserSerializer, summary="One user")
    def get(self, request, user_id: int):
        return Response(UserSerializer(self._user(user_id)).data)

    @extend_schema(
        request=UserChangeSerializer,
        responses=UserSerializer,
        summary="Change a user's role or deactivate them",
    )
    def patch(self, request, user_id: int):
        target = self._user(user_id)
        data = UserChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            if "role" in data.validated_data:
                target = services.user_set_role(
                    by=request.user, user=target, role=data.validated_data["role"]
                )
            if "is_active" in data.validated_data:
                target = services.user_set_active(
                    by=request.user, user=target, active=data.validated_data["is_active"]
                )
        except DjangoValidationError as exc:
            raise _as_api_errors(exc) from exc
        return Response(UserSerializer(target).data)
