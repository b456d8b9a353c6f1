"""Session sign-in for the web console: CSRF token, login, logout and who am I."""

from __future__ import annotations

from django.contrib import auth
from django.middleware.csrf import get_token
from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import CSRFCheck
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.security.api.sign_in import sign_in_password
from lumina.security.http.actors import actor_of
from lumina.security.http.permissions import (
    IsPartiallyAuthenticated,
    is_mfa_verified,
    is_token_request,
)
from lumina.security.http.throttles import LoginAddressThrottle, account_locked
from lumina.security.selectors.auth import user_requires_mfa
from lumina.security.services.auth import AccountLockedError, logout_record

# Sessions are created by the one password check here, not by authenticate().


class CsrfFailed(exceptions.PermissionDenied):
    default_detail = "CSRF verification failed."
    default_code = "csrf_failed"


def enforce_csrf(request) -> None:
    """Django's CSRF check, for a view that no session authentication has checked yet."""
    check = CSRFCheck(lambda _request: None)
    check.process_request(request)
    if check.process_view(request, None, (), {}):
        raise CsrfFailed()


@extend_schema_field({"type": "string", "enum": ["session", "token"]})
class AuthenticatedByField(serializers.CharField):
    pass


class MeOutput(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    full_name = serializers.CharField()
    short_name = serializers.CharField()
    is_staff = serializers.BooleanField()
    is_superuser = serializers.BooleanField()
    authenticated_by = AuthenticatedByField()
    token_id = serializers.UUIDField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField(), allow_null=True)
    mfa_required = serializers.BooleanField(
        help_text="The account has a confirmed second factor, so sessions must verify it."
    )
    mfa_verified = serializers.BooleanField()


def me_data(request, *, mfa_required: bool | None = None) -> dict:
    user = request.user
    token = request.auth if is_token_request(request) else None
    if mfa_required is None:
        mfa_required = token is None and user_requires_mfa(user=user)
    return {
        "id": user.pk,
        "email": user.email,
        "full_name": user.full_name,
        "short_name": user.get_short_name(),
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "authenticated_by": "token" if token is not None else "session",
        "token_id": token.id if token is not None else None,
        "scopes": list(token.scopes) if token is not None else None,
        "mfa_required": mfa_required,
        "mfa_verified": token is None and is_mfa_verified(user),
    }


class CsrfApi(APIView):
    """Set the ``csrftoken`` cookie and return its value, for the login form to send back."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="CsrfToken")
    class OutputSerializer(serializers.Serializer):
        csrf_token = serializers.CharField(
            help_text="Send it back in the X-CSRFToken header of unsafe requests."
        )

    @extend_schema(responses=OutputSerializer, auth=[])
    def get(self, request):
        return Response(self.OutputSerializer({"csrf_token": get_token(request)}).data)


class LoginApi(APIView):
    """Sign in with email and password; starts a session (CSRF token required).

    When the account has a confirmed MFA device the answer says ``mfa_required`` and the
    session stays partially authenticated until ``/auth/mfa/verify`` accepts a code.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginAddressThrottle]

    @extend_schema_serializer(component_name="LoginInput")
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(
            max_length=4096,
            trim_whitespace=False,
            write_only=True,
            style={"input_type": "password"},
        )

    @extend_schema(request=InputSerializer, responses=MeOutput, auth=[])
    def post(self, request):
        enforce_csrf(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            mfa_required = sign_in_password(
                request,
                email=data.validated_data["email"],
                password=data.validated_data["password"],
            )
        except AccountLockedError as exc:
            raise account_locked(exc) from None
        return Response(MeOutput(me_data(request, mfa_required=mfa_required)).data)


class LogoutApi(APIView):
    """End the session (also a partially authenticated one). Tokens are revoked instead."""

    permission_classes = [IsPartiallyAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        if not is_token_request(request):
            logout_record(actor=actor_of(request))
            auth.logout(request)
        return Response(status=204)


class MeApi(APIView):
    """Who is calling, how they authenticated, and where they stand with MFA."""

    permission_classes = [IsPartiallyAuthenticated]

    @extend_schema(responses=MeOutput)
    def get(self, request):
        return Response(MeOutput(me_data(request)).data)


urlpatterns = [
    path("auth/csrf", CsrfApi.as_view(), name="auth-csrf"),
    path("auth/login", LoginApi.as_view(), name="auth-login"),
    path("auth/logout", LogoutApi.as_view(), name="auth-logout"),
    path("auth/me", MeApi.as_view(), name="auth-me"),
]
