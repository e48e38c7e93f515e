"""API sign-in: obtain, refresh and revoke tokens (see :mod:`accounts.tokens`)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import tokens
from accounts.throttles import TokenRateThrottle


class TokenObtainSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, write_only=True)
    otp = serializers.CharField(
        max_length=16,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="The current code of the user's authenticator app (or a backup code). "
        "Required when the user has one.",
    )


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096, write_only=True)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="Send as `Authorization: Bearer <access>`.")
    refresh = serializers.CharField(help_text="Use once; the answer brings a new one.")
    token_type = serializers.CharField(default="Bearer")
    expires_in = serializers.IntegerField(help_text="Seconds the access token lives.")


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class TokenEndpointError(APIException):
    """A refusal from :mod:`accounts.tokens`, as JSON with its stable code."""

    def __init__(self, refused: tokens.TokenRefused):
        super().__init__(refused.detail, refused.code)
        self.status_code = refused.status
        if refused.status == status.HTTP_401_UNAUTHORIZED:
            self.auth_header = 'Bearer realm="api"'
        if refused.retry_after:
            self.wait = refused.retry_after  # DRF turns it into Retry-After


def _errors(*codes: str) -> dict:
    return {
        code: OpenApiResponse(ErrorSerializer, description=description)
        for code, description in (
            (400, "The body is invalid (`invalid`)."),
            (401, "Refused: " + ", ".join(f"`{c}`" for c in codes) + "."),
            (
                429,
                "Too many requests from this address (`throttled`) or a locked account "
                "(`locked`); see `Retry-After`.",
            ),
        )
    }


class _TokenView(APIView):
    # These endpoints authenticate by what the body brings, never by a header
    # or session; only the per-address rate limit applies.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenRateThrottle]

    def finalize_response(self, request, response, *args, **kwargs):
        # Tokens must not be kept by a browser, proxy or client cache (RFC 6749
        # 5.1); refusals carry the same headers so no answer here is cached.
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response

    def _run(self, service, **kwargs):
        try:
            return service(request=self.request, **kwargs)
        except tokens.TokenRefused as refused:
            raise TokenEndpointError(refused) from None


class TokenObtainView(_TokenView):
    @extend_schema(
        operation_id="auth_token_obtain",
        summary="Sign in: an access token (5 minutes) and a refresh token",
        description="Needs `otp` when the user has an authenticator app. A user who must use "
        "MFA but has not set it up gets 403 `mfa_enrolment_required` (set it up in the web "
        "app). Failures count towards the account and address lockout.",
        request=TokenObtainSerializer,
        responses={
            200: TokenPairSerializer,
            **_errors("invalid_credentials", "otp_required", "invalid_otp"),
            403: OpenApiResponse(ErrorSerializer, description="`mfa_enrolment_required`."),
        },
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        body = TokenObtainSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        pair = self._run(
            tokens.token_obtain,
            username=body.validated_data["username"],
            password=body.validated_data["password"],
            otp=body.validated_data.get("otp") or None,
        )
        return Response(pair.as_dict())


class TokenRefreshView(_TokenView):
    @extend_schema(
        operation_id="auth_token_refresh",
        summary="Trade a refresh token for a new pair (rotation)",
        description="Each refresh token works once. Using one again revokes every token of "
        "that sign-in (`token_reused`). Refresh tokens end 12 hours after the sign-in, "
        "however often they were rotated.",
        request=RefreshSerializer,
        responses={
            200: TokenPairSerializer,
            **_errors("token_invalid", "token_expired", "token_revoked", "token_reused"),
        },
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        body = RefreshSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        pair = self._run(tokens.token_refresh, raw=body.validated_data["refresh"])
        return Response(pair.as_dict())


class TokenRevokeView(_TokenView):
    @extend_schema(
        operation_id="auth_token_revoke",
        summary="Sign out: revoke every token of this sign-in",
        request=RefreshSerializer,
        responses={204: None, **_errors("token_invalid", "token_expired")},
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        body = RefreshSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self._run(tokens.token_revoke, raw=body.validated_data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)
