"""REST for MCP servers as tool sources: register, list, change, remove, import tools.

Everything here needs ``tools.manage``: a server's command or URL is configuration of
this host. Environment variables and headers are write-only (``has_env``/``has_headers``
say whether any are set).
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.security.api import actor_of, require
from lumina.tools.selectors.mcp import mcp_server_dto, mcp_server_find, mcp_server_queryset
from lumina.tools.services.mcp import (
    mcp_server_delete,
    mcp_server_register,
    mcp_server_update,
    mcp_tools_import,
)

MANAGE = "tools.manage"
TRANSPORTS = ["stdio", "http"]


class McpServerOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    transport = serializers.ChoiceField(choices=TRANSPORTS)
    command = serializers.ListField(child=serializers.CharField(), help_text="stdio servers.")
    url = serializers.CharField(help_text="http (streamable HTTP) servers.")
    enabled = serializers.BooleanField()
    timeout_seconds = serializers.FloatField()
    has_env = serializers.BooleanField(help_text="Environment variables are set (never shown).")
    has_headers = serializers.BooleanField(help_text="Request headers are set (never shown).")
    tool_names = serializers.ListField(
        child=serializers.CharField(), help_text="Lumina's tools imported from this server."
    )
    last_synced_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    owner_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SkippedOutput(serializers.Serializer):
    tool = serializers.CharField(help_text="The tool's name on the server.")
    reason = serializers.CharField()


class ImportOutput(serializers.Serializer):
    server = McpServerOutput()
    created = serializers.ListField(child=serializers.CharField())
    updated = serializers.ListField(child=serializers.CharField())
    unchanged = serializers.ListField(child=serializers.CharField())
    disabled = serializers.ListField(child=serializers.CharField())
    skipped = SkippedOutput(many=True)


class _Secrets(serializers.DictField):
    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(allow_blank=True), **kwargs)


class McpServerCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    transport = serializers.ChoiceField(choices=TRANSPORTS)
    command = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        max_length=64,
        help_text="stdio: the program (one the operator allows) and its arguments.",
    )
    url = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    env = _Secrets(required=False, help_text="stdio: environment variables (sealed).")
    headers = _Secrets(required=False, help_text="http: request headers (sealed).")
    timeout_seconds = serializers.FloatField(required=False, min_value=0.1, max_value=3600)
    enabled = serializers.BooleanField(required=False)


class McpServerUpdateInput(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    timeout_seconds = serializers.FloatField(required=False, min_value=0.1, max_value=3600)
    env = _Secrets(required=False, help_text="Replaces all of them.")
    headers = _Secrets(required=False, help_text="Replaces all of them.")


def _valid(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


def _import_output(report) -> dict:
    return ImportOutput(
        {
            "server": report.server,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "disabled": report.disabled,
            "skipped": [{"tool": tool, "reason": reason} for tool, reason in report.skipped],
        }
    ).data


class McpServerListCreateApi(GenericAPIView):
    """Registered MCP servers; register one."""

    serializer_class = McpServerOutput

    @extend_schema(responses=McpServerOutput(many=True))
    def get(self, request):
        require(actor_of(request), MANAGE)
        page = self.paginate_queryset(mcp_server_queryset())
        return self.get_paginated_response(
            McpServerOutput([mcp_server_dto(row) for row in page], many=True).data
        )

    @extend_schema(request=McpServerCreateInput, responses={201: McpServerOutput})
    def post(self, request):
        require(actor_of(request), MANAGE)
        data = _valid(McpServerCreateInput, request)
        server = mcp_server_register(actor=actor_of(request), **data)
        return Response(McpServerOutput(server).data, status=201)


class McpServerDetailApi(APIView):
    """One MCP server (by id or name)."""

    @extend_schema(responses=McpServerOutput)
    def get(self, request, server):
        require(actor_of(request), MANAGE)
        return Response(McpServerOutput(mcp_server_dto(mcp_server_find(server))).data)

    @extend_schema(request=McpServerUpdateInput, responses=McpServerOutput)
    def patch(self, request, server):
        require(actor_of(request), MANAGE)
        data = _valid(McpServerUpdateInput, request)
        updated = mcp_server_update(actor=actor_of(request), server=server, **data)
        return Response(McpServerOutput(updated).data)

    @extend_schema(responses={204: None})
    def delete(self, request, server):
        mcp_server_delete(actor=actor_of(request), server=server)
        return Response(status=204)


class McpServerImportApi(APIView):
    """Import the server's tools now: create, update, or disable Lumina's ``mcp`` tools."""

    error_statuses = (502,)  # the server could not be reached or did not answer

    @extend_schema(request=None, responses=ImportOutput)
    def post(self, request, server):
        report = mcp_tools_import(actor=actor_of(request), server=server)
        return Response(_import_output(report))


urlpatterns = [
    path("tools/mcp-servers", McpServerListCreateApi.as_view(), name="tools-mcp-servers"),
    path("tools/mcp-servers/<str:server>", McpServerDetailApi.as_view(), name="tools-mcp-server"),
    path(
        "tools/mcp-servers/<str:server>/import",
        McpServerImportApi.as_view(),
        name="tools-mcp-server-import",
    ),
]
