"""Password change (signed in, with the current password) and reset by an emailed link."""

from __future__ import annotations

from django.contrib.auth import update_session_auth_hash
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.security.http.actors import client_ip
from lumina.security.http.throttles import LoginAddressThrottle, account_locked
from lumina.security.services.auth import AccountLockedError
from lumina.security.services.passwords import (
    password_change,
    password_reset_confirm,
    password_reset_request,
)

RESET_REQUESTED = (
    "If an active account has this email address, a link to reset its password is on its way."
)


def password_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(
        max_length=4096,
        trim_whitespace=False,
        write_only=True,
        style={"input_type": "password"},
        **kwargs,
    )


class PasswordChangeApi(APIView):
    """Change your password; every other session of yours ends, this one stays."""

    # Session only: a password protects interactive sign-in, and a token must not change it.
    authentication_classes = [SessionAuthentication]

    @extend_schema_serializer(component_name="PasswordChangeInput")
    class InputSerializer(serializers.Serializer):
        current_password = password_field()
        new_password = password_field()

    @extend_schema_serializer(component_name="PasswordChanged")
    class OutputSerializer(serializers.Serializer):
        sessions_ended = serializers.IntegerField(help_text="Your other sessions that ended.")

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            ended = password_change(
                user=request.user,
                current_password=data.validated_data["current_password"],
                new_password=data.validated_data["new_password"],
                keep_session_key=request.session.session_key,
                ip_address=client_ip(request),
            )
        except AccountLockedError as exc:
            raise account_locked(exc) from None
        # This session stays valid under the new password (and gets a new key).
        update_session_auth_hash(request, request.user)
        return Response(self.OutputSerializer({"sessions_ended": ended}).data)


class PasswordResetApi(APIView):
    """Ask for a reset link by email. The answer is the same whether the account exists."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginAddressThrottle]

    @extend_schema_serializer(component_name="PasswordResetInput")
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(max_length=254)

    @extend_schema_serializer(component_name="PasswordResetRequested")
    class OutputSerializer(serializers.Serializer):
        detail = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer}, auth=[])
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        password_reset_request(email=data.validated_data["email"], ip_address=client_ip(request))
        return Response(
            self.OutputSerializer({"detail": RESET_REQUESTED}).data,
            status=status.HTTP_202_ACCEPTED,
        )


class PasswordResetConfirmApi(APIView):
    """Set a new password with the ``uid`` and ``token`` of a reset link; it works once.

    Every session of the account ends; sign in again with the new password.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginAddressThrottle]

    @extend_schema_serializer(component_name="PasswordResetConfirmInput")
    class InputSerializer(serializers.Serializer):
        uid = serializers.CharField(max_length=64)
        token = serializers.CharField(max_length=128)
        new_password = password_field()

    @extend_schema(request=InputSerializer, responses={204: None}, auth=[])
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        password_reset_confirm(**data.validated_data, ip_address=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("auth/password", PasswordChangeApi.as_view(), name="auth-password"),
    path("auth/password/reset", PasswordResetApi.as_view(), name="auth-password-reset"),
    path(
        "auth/password/reset/confirm",
        PasswordResetConfirmApi.as_view(),
        name="auth-password-reset-confirm",
    ),
]
