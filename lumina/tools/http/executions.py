"""REST for running tools and reading their executions (results).

``POST /tools/execute`` answers 200 with the finished execution, whatever its status (a
tool that failed, timed out or broke its result schema ran: the execution says how),
or 202 with the pending one and its ``Location`` for runs that go to the background.
A run refused before it starts is the usual error (400/403/404/409). Results are the
caller's own, or everyone's with ``tools.executions.read_all``; another person's is a
404, as if it did not exist.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.kernel.errors import NotFoundError
from lumina.security.api import actor_of
from lumina.tools.selectors.executions import execution_dto, execution_get, execution_list
from lumina.tools.services.executions import execute
from lumina.tools.services.results import result_process
from lumina.tools.types import ExecutionDTO, ExecutionStatus

STATUSES = [status.value for status in ExecutionStatus]


class ExecutionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    tool_id = serializers.UUIDField(allow_null=True, help_text="Null once the tool is removed.")
    tool_name = serializers.CharField()
    tool_version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=STATUSES)
    arguments = serializers.JSONField()
    result = serializers.JSONField(allow_null=True, help_text="Set when status is succeeded.")
    error_code = serializers.CharField()
    error = serializers.CharField()
    stdout = serializers.CharField(help_text="Truncated to the tool's output limit.")
    stderr = serializers.CharField(help_text="Truncated to the tool's output limit.")
    duration_ms = serializers.FloatField(allow_null=True)
    resource_use = serializers.DictField()
    actor_id = serializers.UUIDField(allow_null=True)
    model_call_id = serializers.CharField(help_text="The model's tool-call id, if a model asked.")
    run_id = serializers.UUIDField(allow_null=True, help_text="The function-calling run.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


# One instance for every response: a serializer deep-copies its 18 fields when it is
# built (0.5 ms of CPU on a 10 ms tool run); rendering reads them and changes nothing.
_EXECUTION_OUTPUT = ExecutionOutput()


def execution_body(execution: ExecutionDTO) -> dict:
    """What ``ExecutionOutput(execution).data`` is, without building a serializer."""
    return _EXECUTION_OUTPUT.to_representation(execution)


class ExecuteInput(serializers.Serializer):
    tool = serializers.CharField(max_length=200, help_text="The tool's name or id.")
    arguments = serializers.DictField(default=dict, help_text="Checked against the tool's schema.")
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="Defaults to the current version."
    )
    asynchronous = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="true: answer 202 at once. Default: by the tool's timeout.",
    )


class ProcessInput(serializers.Serializer):
    max_tokens = serializers.IntegerField(
        required=False, min_value=1, max_value=1_000_000, help_text="Truncate to this budget."
    )
    extract_json = serializers.BooleanField(
        required=False, default=False, help_text="Find the JSON value in a text result."
    )
    summarise = serializers.BooleanField(
        required=False, default=False, help_text="Summarise through a chat model."
    )
    model = serializers.CharField(
        required=False, max_length=200, help_text="The chat model that summarises."
    )


class ProcessOutput(serializers.Serializer):
    execution_id = serializers.UUIDField()
    text = serializers.CharField(help_text="The result as text, after truncation.")
    tokens = serializers.IntegerField(help_text="Tokens in text (cl100k_base).")
    truncated = serializers.BooleanField()
    json = serializers.JSONField(allow_null=True, help_text="With extract_json: the value found.")
    summary = serializers.CharField(allow_null=True, help_text="With summarise.")
    summary_model = serializers.CharField(allow_null=True)


class ExecuteApi(APIView):
    """Run a tool (``tools.execute`` on it)."""

    # An unknown tool or version; a disabled tool; no runner for its kind on this server.
    error_statuses = (404, 409, 503)

    @extend_schema(request=ExecuteInput, responses={200: ExecutionOutput, 202: ExecutionOutput})
    def post(self, request):
        data = ExecuteInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        execution = execute(
            actor=actor_of(request),
            tool=values["tool"],
            arguments=values["arguments"],
            version=values.get("version"),
            asynchronous=values["asynchronous"],
        )
        body = execution_body(execution)
        if execution.status is ExecutionStatus.PENDING:
            return Response(
                body, status=202, headers={"Location": f"/api/v1/tools/results/{execution.id}"}
            )
        return Response(body)


class ResultListApi(GenericAPIView):
    """Executions the caller may see, newest first."""

    serializer_class = ExecutionOutput

    class FilterSerializer(serializers.Serializer):
        tool = serializers.CharField(max_length=64, required=False)
        status = serializers.ChoiceField(choices=STATUSES, required=False)
        run_id = serializers.UUIDField(required=False)
        actor_id = serializers.UUIDField(required=False)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)

        def validate(self, attrs):
            if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
                raise serializers.ValidationError({"until": ["Must be after since."]})
            return attrs

    @extend_schema(
        parameters=[
            OpenApiParameter("tool", OpenApiTypes.STR, description="Tool name."),
            OpenApiParameter("status", OpenApiTypes.STR, enum=STATUSES),
            OpenApiParameter("run_id", OpenApiTypes.UUID),
            OpenApiParameter("actor_id", OpenApiTypes.UUID),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
        ],
        responses=ExecutionOutput(many=True),
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = execution_list(actor=actor_of(request), **filters.validated_data)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(
            ExecutionOutput([execution_dto(row) for row in page], many=True).data
        )


def _visible_or_404(request, execution_id):
    execution = execution_get(actor=actor_of(request), execution_id=execution_id)
    if execution is None:
        raise NotFoundError("No such execution.", fields={"execution": ["not found"]})
    return execution


class ResultDetailApi(APIView):
    """One execution: poll it after a 202."""

    @extend_schema(responses=ExecutionOutput)
    def get(self, request, execution_id):
        return Response(execution_body(execution_dto(_visible_or_404(request, execution_id))))


class ResultProcessApi(APIView):
    """Post-process a result: truncate to a token budget, extract JSON, summarise."""

    # A summary calls a model: what /providers/completion may answer.
    error_statuses = (402, 404, 429, 502, 503, 504)

    @extend_schema(request=ProcessInput, responses=ProcessOutput)
    def post(self, request, execution_id):
        data = ProcessInput(data=request.data)
        data.is_valid(raise_exception=True)
        processed = result_process(
            actor=actor_of(request), execution_id=execution_id, **data.validated_data
        )
        return Response(ProcessOutput(processed).data)


urlpatterns = [
    path("tools/execute", ExecuteApi.as_view(), name="tools-execute"),
    path("tools/results", ResultListApi.as_view(), name="tools-results"),
    path("tools/results/<uuid:execution_id>", ResultDetailApi.as_view(), name="tools-result"),
    path(
        "tools/results/<uuid:execution_id>/process",
        ResultProcessApi.as_view(),
        name="tools-result-process",
    ),
]
