"""``/providers/completion`` and ``/providers/stream``: completions with Lumina's metadata.

The same path as ``/v1/chat/completions`` (selection, budgets, retries, fallback, usage),
answered in Lumina's own envelope: which provider served, every attempt, and the cost.
The stream is an async generator handed to Django's ASGI handler, so chunks leave as
they arrive instead of being buffered whole.
"""

from __future__ import annotations

from typing import Any

import orjson
from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.providers.http.gateway import sse_data
from lumina.providers.services.completion import (
    Call,
    StreamInterrupted,
    chat_complete,
    chat_prepare,
    chat_stream,
)
from lumina.providers.types import Strategy
from lumina.security.api import actor_of


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "object"}]})
class ToolChoiceField(serializers.JSONField):
    """OpenAI's ``tool_choice``: "none", "auto", "required", or an object naming a tool."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, (str, dict)):
            raise serializers.ValidationError("Must be a string or an object.", code="invalid")
        return super().to_internal_value(data)


@extend_schema_serializer(component_name="CompletionInput")
class CompletionInput(serializers.Serializer):
    model = serializers.CharField(
        default="lumina/auto",
        help_text="A model name, an alias, 'provider/model', or 'lumina/auto'.",
    )
    messages = serializers.ListField(
        child=serializers.DictField(), min_length=1, help_text="OpenAI Chat Completions messages."
    )
    strategy = serializers.ChoiceField(
        choices=[s.value for s in Strategy], required=False, help_text="How to rank candidates."
    )
    max_tokens = serializers.IntegerField(min_value=1, required=False)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False)
    tools = serializers.ListField(child=serializers.DictField(), required=False)
    tool_choice = ToolChoiceField(required=False)
    response_format = serializers.DictField(required=False)


class AttemptOutput(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    number = serializers.IntegerField()
    outcome = serializers.CharField(help_text='"ok", "retry" or "error".')
    error_code = serializers.CharField(allow_blank=True)
    duration_ms = serializers.FloatField()


@extend_schema_serializer(component_name="CompletionOutput")
class CompletionOutput(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    attempts = AttemptOutput(many=True)
    usage = serializers.DictField(help_text="Tokens per kind, and whether Lumina estimated them.")
    cost = serializers.DecimalField(max_digits=20, decimal_places=10)
    completion = serializers.DictField(help_text="The completion in OpenAI's response shape.")


def _openai_body(data: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    body = {key: value for key, value in data.items() if key != "strategy"}
    body["stream"] = stream
    return body


def _attempts(call: Call) -> list[dict[str, Any]]:
    return [
        {
            "provider": a.deployment.provider.name,
            "model": a.deployment.name,
            "number": a.number,
            "outcome": a.outcome,
            "error_code": a.error_code,
            "duration_ms": round(a.duration_ms, 2),
        }
        for a in call.attempts
    ]


# What the completion path refuses besides bad input: unknown model, budget, rate limit,
# and providers that fail, are unavailable or too slow.
COMPLETION_ERRORS = (402, 404, 429, 502, 503, 504)


class CompletionApi(APIView):
    """A whole chat completion, with the provider that served it, attempts and cost."""

    error_statuses = COMPLETION_ERRORS

    @extend_schema(request=CompletionInput, responses={200: CompletionOutput})
    def post(self, request):
        data = CompletionInput(data=request.data)
        data.is_valid(raise_exception=True)
        strategy = data.validated_data.get("strategy")

        async def run() -> tuple[Call, dict[str, Any]]:
            call = await chat_prepare(
                actor=actor_of(request),
                body=_openai_body(data.validated_data, stream=False),
                request_id=getattr(request, "request_id", ""),
                strategy=Strategy(strategy) if strategy else None,
            )
            return call, await chat_complete(call)

        call, completion = async_to_sync(run)()
        usage = call.usage
        return Response(
            {
                "provider": call.deployment.provider.name,
                "model": call.deployment.name,
                "attempts": _attempts(call),
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "cached_input_tokens": usage.cached_input_tokens,
                    "cache_write_tokens": usage.cache_write_tokens,
                    "output_tokens": usage.output_tokens,
                    "reasoning_tokens": usage.reasoning_tokens,
                    "estimated": usage.estimated,
                },
                "cost": str(call.deployment.prices.cost(usage)),
                "completion": completion,
            }
        )


class StreamApi(APIView):
    """A streamed chat completion as server-sent events in OpenAI's chunk format.

    The first event names the provider and model that serve the stream (``event:
    lumina.selected``); a failure after it ends the stream with an ``error`` event and
    no ``[DONE]``.
    """

    error_statuses = COMPLETION_ERRORS

    @extend_schema(
        request=CompletionInput,
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="Server-sent events: OpenAI chunks, then [DONE]."
            )
        },
    )
    def post(self, request):
        data = CompletionInput(data=request.data)
        data.is_valid(raise_exception=True)
        strategy = data.validated_data.get("strategy")
        body = _openai_body(data.validated_data, stream=True)
        body["stream_options"] = {"include_usage": True}

        async def open_stream():
            call = await chat_prepare(
                actor=actor_of(request),
                body=body,
                request_id=getattr(request, "request_id", ""),
                strategy=Strategy(strategy) if strategy else None,
            )
            chunks = chat_stream(call)
            # Wait for the first chunk here, so that a request no provider can serve gets
            # a proper error status instead of a 200 followed by an error event.
            first = await anext(chunks, None)
            return call, chunks, first

        call, chunks, first = async_to_sync(open_stream)()
        response = StreamingHttpResponse(
            _events(call, chunks, first), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"
        return response


async def _events(call: Call, chunks, first):
    try:
        selected = {"provider": call.deployment.provider.name, "model": call.deployment.name}
        yield b"event: lumina.selected\ndata: " + orjson.dumps(selected) + b"\n\n"
        chunk = first
        while chunk is not None:
            yield sse_data(chunk)
            chunk = await anext(chunks, None)
        yield b"data: [DONE]\n\n"
    except StreamInterrupted as broken:
        yield sse_data({"error": {"message": broken.error.message, "code": broken.error.code}})
    finally:
        await chunks.aclose()


urlpatterns = [
    path("providers/completion", CompletionApi.as_view(), name="providers-completion"),
    path("providers/stream", StreamApi.as_view(), name="providers-stream"),
]
