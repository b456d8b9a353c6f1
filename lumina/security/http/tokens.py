"""Personal API tokens: create (the token is shown once), list, inspect and revoke."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.security.http.actors import actor_of
from lumina.security.selectors.tokens import token_list
from lumina.security.services.tokens import (
    DEFAULT_SCOPES,
    token_create,
    token_read,
    token_revoke,
    tokens_manage_require,
)


class ApiTokenOutput(serializers.Serializer):
    id = serializers.UUIDField()
    user_id = serializers.UUIDField()
    user_email = serializers.EmailField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The first characters of the token, for display.")
    scopes = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(
        allow_null=True, help_text="Updated at most once a minute."
    )
    revoked_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField(help_text='"active", "expired" or "revoked".')


class ApiTokenCreatedOutput(ApiTokenOutput):
    token = serializers.CharField(help_text="The token itself. It is shown this once only.")


class TokenListCreateApi(GenericAPIView):
    """Your API tokens (with ``security.tokens.manage``, another user's: ``?user=``);
    create one."""

    serializer_class = ApiTokenOutput

    class FilterSerializer(serializers.Serializer):
        user = serializers.UUIDField(required=False)

    @extend_schema_serializer(component_name="ApiTokenCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        scopes = serializers.ListField(
            child=serializers.CharField(max_length=100),
            required=False,
            default=list(DEFAULT_SCOPES),
            help_text="Permission patterns such as 'providers.*', 'memory.read' or '*'.",
        )
        expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
        user = serializers.UUIDField(
            required=False, help_text="Superusers only: create the token for this user."
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "user",
                OpenApiTypes.UUID,
                description="Whose tokens (another user's needs security.tokens.manage).",
            )
        ],
        responses=ApiTokenOutput(many=True),
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        actor = actor_of(request)
        user_id = filters.validated_data.get("user", actor.user_id)
        tokens_manage_require(actor, user_id)
        page = self.paginate_queryset(token_list(user_id=user_id))
        return self.get_paginated_response(ApiTokenOutput(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ApiTokenCreatedOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request)
        issued = token_create(
            user_id=data.validated_data.get("user", actor.user_id),
            actor=actor,
            name=data.validated_data["name"],
            scopes=data.validated_data["scopes"],
            expires_at=data.validated_data["expires_at"],
        )
        body = {**ApiTokenOutput(issued.token).data, "token": issued.secret}
        return Response(body, status=201)


class TokenDetailApi(APIView):
    """One API token; DELETE revokes it (at once, in every process)."""

    @extend_schema(responses=ApiTokenOutput)
    def get(self, request, token_id):
        return Response(ApiTokenOutput(token_read(token_id=token_id, actor=actor_of(request))).data)

    @extend_schema(responses={200: ApiTokenOutput})
    def delete(self, request, token_id):
        return Response(
            ApiTokenOutput(token_revoke(token_id=token_id, actor=actor_of(request))).data
        )


urlpatterns = [
    path("auth/tokens", TokenListCreateApi.as_view(), name="auth-tokens"),
    path("auth/tokens/<uuid:token_id>", TokenDetailApi.as_view(), name="auth-token"),
]
