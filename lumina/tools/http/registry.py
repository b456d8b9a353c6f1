"""REST for the registry: tools and their versions, builtins, the HTTP tools' allow-list.

A tool is addressed by its id or its name. ``GET /tools?format=openai`` answers with the
enabled tools as OpenAI's ``tools`` list, ready to pass to a chat completion.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.security.api import actor_of, require
from lumina.tools import builtins
from lumina.tools.errors import ToolNotFoundError
from lumina.tools.models import HttpAllowEntry, ToolVersion
from lumina.tools.selectors.registry import tool_dto, tool_dtos, tool_find, tool_queryset
from lumina.tools.services.registry import (
    http_allow_add,
    http_allow_remove,
    tool_create,
    tool_delete,
    tool_update,
)
from lumina.tools.types import ToolKind

KINDS = [kind.value for kind in ToolKind]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# The platform's pagination bound (REST_FRAMEWORK's paginator), restated for the document.
MAX_PAGE_SIZE = 500


def _read(request) -> None:
    require(actor_of(request), "tools.read")


def _tool_or_404(key: str):
    tool = tool_find(key)
    if tool is None:
        raise ToolNotFoundError(key)
    return tool


def _valid(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


# --- Output -----------------------------------------------------------------------------


class LimitsOutput(serializers.Serializer):
    timeout_seconds = serializers.FloatField()
    memory_mb = serializers.IntegerField()
    output_bytes = serializers.IntegerField()
    network = serializers.BooleanField()


class ToolOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=KINDS)
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    version = serializers.IntegerField(help_text="The current version.")
    input_schema = serializers.DictField(help_text="JSON Schema of the arguments.")
    output_schema = serializers.DictField(allow_null=True, help_text="JSON Schema of the result.")
    limits = LimitsOutput()
    owner_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class VersionOutput(serializers.Serializer):
    number = serializers.IntegerField()
    description = serializers.CharField()
    input_schema = serializers.DictField()
    output_schema = serializers.DictField(allow_null=True)
    source = serializers.CharField(help_text="python tools.")
    http_url = serializers.CharField(help_text="http tools.")
    http_method = serializers.CharField()
    builtin_name = serializers.CharField(help_text="builtin tools.")
    mcp_tool_name = serializers.CharField(help_text="mcp tools: the name on the server.")
    limits = LimitsOutput()
    created_by = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()


class OpenAIFunction(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    parameters = serializers.DictField()


class OpenAITool(serializers.Serializer):
    type = serializers.CharField(help_text='Always "function".')
    function = OpenAIFunction()


class ToolPage(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ToolOutput(many=True)


# ?format=openai answers with OpenAI's `tools` list instead of a page of tools.
TOOL_LIST_RESPONSE = PolymorphicProxySerializer(
    component_name="ToolListOrOpenAITools",
    serializers=[ToolPage, OpenAITool(many=True)],
    resource_type_field_name=None,
    many=False,
)


class BuiltinOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    input_schema = serializers.DictField()
    output_schema = serializers.DictField(allow_null=True)


class AllowEntryOutput(serializers.Serializer):
    id = serializers.UUIDField()
    prefix = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()


# --- Input ------------------------------------------------------------------------------


class ToolUpdateInput(serializers.Serializer):
    description = serializers.CharField(max_length=4000, required=False, allow_blank=True)
    input_schema = serializers.DictField(required=False, help_text="JSON Schema (type object).")
    output_schema = serializers.DictField(required=False, allow_null=True)
    source = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, help_text="python tools."
    )
    http_url = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    http_method = serializers.ChoiceField(choices=METHODS, required=False)
    builtin_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    mcp_tool_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    timeout_seconds = serializers.FloatField(required=False, min_value=0.01, max_value=3600)
    memory_mb = serializers.IntegerField(required=False, min_value=16, max_value=65536)
    output_bytes = serializers.IntegerField(
        required=False, min_value=1024, max_value=64 * 1024 * 1024
    )
    network = serializers.BooleanField(required=False)
    enabled = serializers.BooleanField(required=False)


class ToolCreateInput(ToolUpdateInput):
    name = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=KINDS)
    mcp_server_id = serializers.UUIDField(required=False, allow_null=True)


class AllowEntryInput(serializers.Serializer):
    prefix = serializers.CharField(max_length=2000)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)


def _version_output(version: ToolVersion) -> dict:
    return VersionOutput(
        {
            **{
                field: getattr(version, field)
                for field in VersionOutput().fields
                if field != "limits"
            },
            "limits": version.limits,
        }
    ).data


# --- Views ------------------------------------------------------------------------------


class _FormatIsOurs(DefaultContentNegotiation):
    """``?format=`` picks the export shape here (the issue's contract), not DRF's renderer."""

    class settings:  # stands in for DRF's api_settings
        URL_FORMAT_OVERRIDE = None


class ToolListCreateApi(GenericAPIView):
    """Registered tools; register one (``tools.manage``)."""

    serializer_class = ToolOutput
    content_negotiation_class = _FormatIsOurs
    error_statuses = (404,)  # a page past the last

    class FilterSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=KINDS, required=False)
        enabled = serializers.BooleanField(required=False, allow_null=True, default=None)
        search = serializers.CharField(max_length=64, required=False)
        format = serializers.ChoiceField(choices=["lumina", "openai"], required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, enum=KINDS),
            OpenApiParameter("enabled", OpenApiTypes.BOOL),
            OpenApiParameter("search", OpenApiTypes.STR, description="Part of the name."),
            OpenApiParameter(
                "page", {"type": "integer", "minimum": 1}, description="Not with format=openai."
            ),
            OpenApiParameter(
                "page_size", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}
            ),
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=["lumina", "openai"],
                description="openai: the enabled tools as OpenAI's `tools` list, unpaginated.",
            ),
        ],
        responses=TOOL_LIST_RESPONSE,
        operation_id="v1_tools_list",
    )
    def get(self, request):
        _read(request)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        if data.get("format") == "openai":
            rows = list(
                tool_queryset(kind=data.get("kind"), enabled=True, search=data.get("search"))
            )
            return Response(OpenAITool([tool.openai() for tool in tool_dtos(rows)], many=True).data)
        rows = tool_queryset(
            kind=data.get("kind"), enabled=data["enabled"], search=data.get("search")
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ToolOutput(tool_dtos(list(page)), many=True).data)

    @extend_schema(request=ToolCreateInput, responses={201: ToolOutput})
    def post(self, request):
        data = _valid(ToolCreateInput, request)
        tool = tool_create(actor=actor_of(request), **data)
        return Response(ToolOutput(tool).data, status=201)


class ToolDetailApi(APIView):
    """One tool (by id or name); PATCH saves its next version, DELETE removes it."""

    @extend_schema(responses=ToolOutput)
    def get(self, request, tool):
        _read(request)
        return Response(ToolOutput(tool_dto(_tool_or_404(tool))).data)

    @extend_schema(request=ToolUpdateInput, responses=ToolOutput)
    def patch(self, request, tool):
        data = _valid(ToolUpdateInput, request)
        return Response(ToolOutput(tool_update(actor=actor_of(request), tool=tool, **data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, tool):
        tool_delete(actor=actor_of(request), tool=tool)
        return Response(status=204)


class ToolVersionListApi(GenericAPIView):
    """Every version of a tool, newest first, with its implementation."""

    serializer_class = VersionOutput

    @extend_schema(responses=VersionOutput(many=True))
    def get(self, request, tool):
        _read(request)
        row = _tool_or_404(tool)
        page = self.paginate_queryset(row.versions.order_by("-number"))
        return self.get_paginated_response([_version_output(version) for version in page])


class ToolVersionDetailApi(APIView):
    @extend_schema(responses=VersionOutput)
    def get(self, request, tool, number):
        _read(request)
        version = _tool_or_404(tool).versions.filter(number=number).first()
        if version is None:
            raise ToolNotFoundError(f"{tool} v{number}", field="version")
        return Response(_version_output(version))


class BuiltinListApi(APIView):
    """The builtins this server offers (register one as a tool of kind ``builtin``)."""

    @extend_schema(responses=BuiltinOutput(many=True))
    def get(self, request):
        _read(request)
        return Response(BuiltinOutput(builtins.available().values(), many=True).data)


class AllowListApi(GenericAPIView):
    """URL prefixes ``http`` tools may call (``tools.manage``)."""

    serializer_class = AllowEntryOutput

    @extend_schema(responses=AllowEntryOutput(many=True))
    def get(self, request):
        require(actor_of(request), "tools.manage")
        page = self.paginate_queryset(HttpAllowEntry.objects.all())
        return self.get_paginated_response(AllowEntryOutput(page, many=True).data)

    @extend_schema(request=AllowEntryInput, responses={201: AllowEntryOutput})
    def post(self, request):
        data = _valid(AllowEntryInput, request)
        entry = http_allow_add(actor=actor_of(request), **data)
        return Response(AllowEntryOutput(entry).data, status=201)


class AllowEntryApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, entry_id):
        http_allow_remove(actor=actor_of(request), entry_id=entry_id)
        return Response(status=204)


# Fixed routes come before ``tools/<tool>``; tool names cannot take these words.
urlpatterns = [
    path("tools", ToolListCreateApi.as_view(), name="tools"),
    path("tools/builtins", BuiltinListApi.as_view(), name="tools-builtins"),
    path("tools/http-allow-list", AllowListApi.as_view(), name="tools-allow-list"),
    path(
        "tools/http-allow-list/<uuid:entry_id>", AllowEntryApi.as_view(), name="tools-allow-entry"
    ),
]
detail_urlpatterns = [
    path("tools/<str:tool>", ToolDetailApi.as_view(), name="tool"),
    path("tools/<str:tool>/versions", ToolVersionListApi.as_view(), name="tool-versions"),
    path(
        "tools/<str:tool>/versions/<int:number>",
        ToolVersionDetailApi.as_view(),
        name="tool-version",
    ),
]
