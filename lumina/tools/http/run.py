"""``POST /tools/run``: the function-calling loop over REST, whole or as server-sent events.

Streamed, each step is an event as it happens: ``lumina.run`` (the run id and the tools
offered), ``lumina.model`` (each assistant message), ``lumina.tool`` (each call's
execution), ``lumina.answer`` (the answer, why the loop stopped, tokens used), then
``data: [DONE]``. A refusal before the loop starts (bad input, unknown tool, no
permission) is an error status; a failure after the first event ends the stream with an
``error`` event and no ``[DONE]``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from asgiref.sync import async_to_sync
from django.http import StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lumina.kernel.errors import ApplicationError
from lumina.security.api import actor_of
from lumina.tools.services.loop import (
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_MAX_RESULT_TOKENS,
    MAX_ITERATIONS,
    MAX_TOOLS,
    LoopResult,
    run_with_tools,
    run_with_tools_events,
)

# What the model call may refuse with besides bad input (as /providers/completion).
RUN_ERRORS = (402, 404, 409, 429, 502, 503, 504)


class RunInput(serializers.Serializer):
    messages = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=1000,
        help_text="OpenAI Chat Completions messages.",
    )
    tools = serializers.ListField(
        child=serializers.CharField(max_length=200),
        min_length=1,
        max_length=MAX_TOOLS,
        help_text="Names or ids of the tools the model may call.",
    )
    model = serializers.CharField(max_length=200, default="lumina/auto")
    max_iterations = serializers.IntegerField(
        min_value=1, max_value=MAX_ITERATIONS, default=DEFAULT_MAX_ITERATIONS
    )
    parallel_tool_calls = serializers.BooleanField(default=True)
    tool_choice = serializers.ChoiceField(
        choices=["auto", "required", "none"], required=False, help_text="For the first turn."
    )
    max_result_tokens = serializers.IntegerField(
        min_value=1, max_value=100_000, default=DEFAULT_MAX_RESULT_TOKENS,
        help_text="Each result is truncated to this many tokens before the model sees it.",
    )  # fmt: skip
    max_tokens = serializers.IntegerField(min_value=1, required=False)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False)
    stream = serializers.BooleanField(default=False)


class TraceOutput(serializers.Serializer):
    id = serializers.CharField(help_text="The model's tool-call id.")
    name = serializers.CharField()
    arguments = serializers.JSONField()
    status = serializers.CharField(help_text="The execution's status, or rejected.")
    content = serializers.CharField(help_text="What went back to the model.")
    execution_id = serializers.UUIDField(allow_null=True)
    truncated = serializers.BooleanField()


class StepOutput(serializers.Serializer):
    iteration = serializers.IntegerField()
    message = serializers.DictField()
    finish_reason = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    usage = serializers.DictField()
    tool_calls = TraceOutput(many=True)


class RunOutput(serializers.Serializer):
    run_id = serializers.UUIDField()
    answer = serializers.CharField(allow_null=True)
    stopped = serializers.ChoiceField(choices=["answer", "max_iterations"])
    iterations = serializers.IntegerField()
    usage = serializers.DictField()
    steps = StepOutput(many=True)
    messages = serializers.ListField(child=serializers.DictField())


def _options(data: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_iterations": data["max_iterations"],
        "parallel": data["parallel_tool_calls"],
        "max_result_tokens": data["max_result_tokens"],
    }
    for name in ("tool_choice", "max_tokens", "temperature"):
        if name in data:
            options[name] = data[name]
    return options


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data, default=str) + b"\n\n"


class RunApi(APIView):
    """Run a conversation with tools until the model answers (``tools.execute`` on each tool
    offered, ``providers.use`` for the model)."""

    error_statuses = RUN_ERRORS

    @extend_schema(
        request=RunInput,
        responses={
            200: RunOutput,
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, description="With stream: one event per step, then [DONE]."
            ),
        },
    )
    def post(self, request):
        data = RunInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        actor = actor_of(request)
        if not values["stream"]:
            result = run_with_tools(
                values["messages"],
                values["tools"],
                values["model"],
                actor=actor,
                **_options(values),
            )
            return Response(RunOutput(_output(result)).data)
        events = run_with_tools_events(
            values["messages"], values["tools"], values["model"], actor=actor, **_options(values)
        )

        async def first():
            # Refusals before the loop starts get their status, not a 200 and an error event.
            return await anext(events)

        opening = async_to_sync(first)()
        response = StreamingHttpResponse(_stream(opening, events), content_type="text/event-stream")
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"
        return response


def _output(result: LoopResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "answer": result.answer,
        "stopped": result.stopped,
        "iterations": result.iterations,
        "usage": result.usage,
        "steps": [dataclasses.asdict(step) for step in result.steps],
        "messages": list(result.messages),
    }


async def _stream(opening, events):
    try:
        yield _event(f"lumina.{opening.kind}", opening.data)
        async for event in events:
            data = dict(event.data)
            data.pop("result", None)
            yield _event(f"lumina.{event.kind}", data)
        yield b"data: [DONE]\n\n"
    except ApplicationError as exc:
        yield _event("error", {"error": {"code": exc.code, "message": exc.message}})
    finally:
        await events.aclose()


urlpatterns = [path("tools/run", RunApi.as_view(), name="tools-run")]
