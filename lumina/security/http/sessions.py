"""Browser sessions: your own (list, end one, end all others) and, with
``security.sessions.manage``, anyone's (list, end one, end all of a user's)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.security.http.actors import actor_of
from lumina.security.http.authorization import Authorized
from lumina.security.http.permissions import is_token_request
from lumina.security.selectors.sessions import live_sessions, session_info, session_list
from lumina.security.services.sessions import (
    MANAGE_ACTION,
    session_revoke,
    session_revoke_own,
    sessions_revoke_others,
    sessions_revoke_user,
)


@extend_schema_serializer(component_name="Session")
class SessionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    user_id = serializers.UUIDField()
    user_agent = serializers.CharField()
    ip_address = serializers.IPAddressField(allow_null=True)
    authenticated_at = serializers.DateTimeField(
        allow_null=True, help_text="When the user signed in; the maximum age counts from here."
    )
    last_seen_at = serializers.DateTimeField(
        allow_null=True, help_text="Updated at most once a minute."
    )
    expires_at = serializers.DateTimeField(
        help_text="When the session ends unless it is used again (idle timeout or maximum age)."
    )
    mfa_verified = serializers.BooleanField()
    current = serializers.BooleanField(help_text="The session this request came with.")


@extend_schema_serializer(component_name="SessionsRevoked")
class RevokedOutput(serializers.Serializer):
    revoked = serializers.IntegerField(help_text="How many sessions ended.")


def _current_key(request) -> str | None:
    return None if is_token_request(request) else request.session.session_key


class OwnSessionListApi(APIView):
    """Your signed-in sessions, most recently used first."""

    @extend_schema(responses=SessionOutput(many=True))
    def get(self, request):
        sessions = session_list(user_id=request.user.pk, current_key=_current_key(request))
        return Response(SessionOutput(sessions, many=True).data)


class OwnSessionApi(APIView):
    """End one of your sessions (your current one signs you out)."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, session_id):
        session_revoke_own(actor=actor_of(request), session_id=session_id)
        current = _current_key(request)
        if current is not None and not request.session.exists(current):
            request.session.flush()
        return Response(status=204)


class OwnSessionsRevokeOthersApi(APIView):
    """End every one of your sessions except the one making this request."""

    @extend_schema(request=None, responses=RevokedOutput)
    def post(self, request):
        revoked = sessions_revoke_others(
            actor=actor_of(request), current_session_key=_current_key(request)
        )
        return Response(RevokedOutput({"revoked": revoked}).data)


class SessionListApi(GenericAPIView):
    """Everyone's signed-in sessions (``security.sessions.manage``), filtered by ``user_id``."""

    permission_classes = [Authorized(MANAGE_ACTION)]
    serializer_class = SessionOutput

    @extend_schema_serializer(component_name="SessionFilter")
    class FilterSerializer(serializers.Serializer):
        user_id = serializers.UUIDField(required=False)

    @extend_schema(parameters=[FilterSerializer], responses=SessionOutput(many=True))
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(live_sessions(user_id=filters.validated_data.get("user_id")))
        current = _current_key(request)
        sessions = [session_info(session, current_key=current) for session in page]
        return self.get_paginated_response(SessionOutput(sessions, many=True).data)


class SessionApi(APIView):
    """End anyone's session (``security.sessions.manage``)."""

    permission_classes = [Authorized(MANAGE_ACTION)]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, session_id):
        session_revoke(actor=actor_of(request), session_id=session_id)
        return Response(status=204)


class SessionsRevokeUserApi(APIView):
    """End every session of a user (``security.sessions.manage``)."""

    permission_classes = [Authorized(MANAGE_ACTION)]

    @extend_schema_serializer(component_name="SessionsRevokeUserInput")
    class InputSerializer(serializers.Serializer):
        user_id = serializers.UUIDField()

    @extend_schema(request=InputSerializer, responses=RevokedOutput)
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        revoked = sessions_revoke_user(
            actor=actor_of(request), user_id=data.validated_data["user_id"]
        )
        return Response(RevokedOutput({"revoked": revoked}).data)


urlpatterns = [
    path("auth/sessions", OwnSessionListApi.as_view(), name="auth-sessions"),
    path(
        "auth/sessions/revoke-others",
        OwnSessionsRevokeOthersApi.as_view(),
        name="auth-sessions-revoke-others",
    ),
    path("auth/sessions/<uuid:session_id>", OwnSessionApi.as_view(), name="auth-session"),
    path("sessions", SessionListApi.as_view(), name="sessions"),
    path("sessions/revoke", SessionsRevokeUserApi.as_view(), name="sessions-revoke-user"),
    path("sessions/<uuid:session_id>", SessionApi.as_view(), name="session"),
]
