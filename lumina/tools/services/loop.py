"""The function-calling loop: a model asks for tools, Lumina runs them, the model answers.

``run_with_tools_events`` is the one implementation, an async generator of steps that the
SSE endpoint streams; ``run_with_tools_async`` collects it, and ``run_with_tools`` serves
synchronous callers. Each turn sends the conversation and the offered tools through
``providers.api.complete_async`` (OpenAI's shape whatever the provider: the adapters
translate Anthropic's ``tool_use``/``tool_result`` blocks), runs every call the answer
asks for (at once, when the model asks for several), appends the results as ``tool``
messages, and repeats until the model answers without calls or ``max_iterations`` turns
are spent.

The model may only call the tools the caller offered, each run is an ordinary execution
(authorised, validated, recorded with ``model_call_id`` and the loop's ``run_id``), and
a refused or failed call goes back to the model as an error message rather than ending
the loop. Results are truncated to ``max_result_tokens`` before they re-enter the prompt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections

from lumina.kernel.errors import ApplicationError
from lumina.providers.api import complete_async, truncate_text_tokens
from lumina.security.api import Actor, require
from lumina.tools.errors import ToolDisabledError, ToolNotFoundError
from lumina.tools.selectors.registry import tool_dto, tool_find
from lumina.tools.services.executions import EXECUTE, execute, resource_of
from lumina.tools.services.results import result_text
from lumina.tools.types import ToolDTO

DEFAULT_MAX_ITERATIONS = 8
MAX_ITERATIONS = 32
MAX_TOOLS = 128  # OpenAI's limit on tools per request
DEFAULT_MAX_RESULT_TOKENS = 2000

T = TypeVar("T")
_threads: ThreadPoolExecutor | None = None
_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _worker(function: Callable[..., T], *args: Any) -> T:
    # As Django does around a request: a connection broken or past its age is replaced.
    close_old_connections()
    try:
        return function(*args)
    finally:
        close_old_connections()


async def _off_loop(function: Callable[..., T], *args: Any) -> T:
    """Run database work on this module's long-lived threads: their connections are reused
    from run to run (fresh threads would each open one, and leave it open)."""
    global _threads
    if _threads is None:
        with _lock:
            if _threads is None:
                size = max(4, int(settings.LUMINA_TOOLS_ASYNC_WORKERS) * 2)
                _threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="tools-loop")
    return await asyncio.get_running_loop().run_in_executor(
        _threads, functools.partial(_worker, function, *args)
    )


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on one long-lived loop, so synchronous callers share its pooled provider
    connections (a fresh loop per run would open a connection pool each time)."""
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="tools-loop", daemon=True).start()
    return asyncio.run_coroutine_threadsafe(coroutine, _loop).result()


@dataclasses.dataclass(frozen=True)
class ToolCallTrace:
    """One call the model asked for, and what came of it."""

    id: str
    name: str
    arguments: Any
    status: str
    content: str  # what went back to the model
    execution_id: uuid.UUID | None = None
    truncated: bool = False


@dataclasses.dataclass(frozen=True)
class LoopStep:
    iteration: int
    message: Mapping[str, Any]  # the assistant's message, OpenAI's shape
    finish_reason: str | None
    model: str | None
    usage: Mapping[str, Any]
    tool_calls: tuple[ToolCallTrace, ...] = ()


@dataclasses.dataclass(frozen=True)
class LoopResult:
    run_id: uuid.UUID
    answer: str | None
    stopped: str  # "answer", or "max_iterations" when turns ran out with calls pending
    iterations: int
    steps: tuple[LoopStep, ...]
    messages: tuple[Mapping[str, Any], ...]  # the whole conversation, results included
    usage: Mapping[str, int]


@dataclasses.dataclass(frozen=True)
class LoopEvent:
    """A step of a run as it happens: ``run``, ``model``, ``tool`` or ``answer``."""

    kind: str
    data: Mapping[str, Any]


def tools_resolve(actor: Actor, tools: Sequence[str]) -> list[ToolDTO]:
    """The offered tools, each one the actor may run (404/403/409 naming ``tools[i]``)."""
    if not tools:
        raise ApplicationError("Offer at least one tool.", fields={"tools": ["required"]})
    if len(tools) > MAX_TOOLS:
        raise ApplicationError(f"At most {MAX_TOOLS} tools.", fields={"tools": ["too many"]})
    resolved: dict[str, ToolDTO] = {}
    for index, key in enumerate(tools):
        row = tool_find(key)
        if row is None:
            require(actor, EXECUTE)  # who may run nothing learns nothing about names
            raise ToolNotFoundError(str(key), field=f"tools[{index}]")
        require(actor, EXECUTE, resource_of(row))
        if not row.enabled:
            raise ToolDisabledError(row.name, field=f"tools[{index}]")
        resolved[row.name] = tool_dto(row)
    return list(resolved.values())


def _arguments(raw: Any) -> tuple[Any, str | None]:
    if isinstance(raw, Mapping):
        return dict(raw), None
    if raw in (None, ""):
        return {}, None
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return raw, "The arguments are not valid JSON."
    if not isinstance(value, dict):
        return value, "The arguments must be a JSON object."
    return value, None


def _call_sync(
    actor: Actor,
    call: Mapping[str, Any],
    offered: Mapping[str, ToolDTO],
    run_id: uuid.UUID,
    max_result_tokens: int,
) -> ToolCallTrace:
    function = call.get("function") or {}
    call_id = str(call.get("id") or "")
    name = str(function.get("name") or "")
    arguments, problem = _arguments(function.get("arguments"))

    def refused(status: str, message: str) -> ToolCallTrace:
        return ToolCallTrace(call_id, name, arguments, status, f"Error: {message}")

    if name not in offered:
        return refused("rejected", f"There is no tool named '{name}' in this conversation.")
    if problem:
        return refused("rejected", problem)
    try:
        done = execute(
            actor=actor,
            tool=offered[name].id,
            arguments=arguments,
            model_call_id=call_id,
            run_id=run_id,
            asynchronous=False,
        )
    except ApplicationError as exc:
        detail = "; ".join(f"{key}: {', '.join(value)}" for key, value in exc.fields.items())
        return refused("rejected", f"{exc.message} {detail}".strip())
    text = result_text(done)
    content, _, truncated = truncate_text_tokens(text, max_result_tokens)
    return ToolCallTrace(call_id, name, arguments, done.status.value, content, done.id, truncated)


def _assistant(message: Mapping[str, Any]) -> dict[str, Any]:
    """The assistant message as it goes back into the conversation."""
    kept: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        kept["tool_calls"] = [
            {
                "id": call.get("id"),
                "type": "function",
                "function": {
                    "name": (call.get("function") or {}).get("name", ""),
                    "arguments": (call.get("function") or {}).get("arguments") or "{}",
                },
            }
            for call in message["tool_calls"]
        ]
    return kept


def _trace_data(trace: ToolCallTrace) -> dict[str, Any]:
    data = dataclasses.asdict(trace)
    data["execution_id"] = str(trace.execution_id) if trace.execution_id else None
    return data


async def run_with_tools_events(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[str],
    model: str = "lumina/auto",
    *,
    actor: Actor,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    parallel: bool = True,
    tool_choice: Any = None,
    max_result_tokens: int = DEFAULT_MAX_RESULT_TOKENS,
    run_id: uuid.UUID | None = None,
    **options: Any,
) -> AsyncIterator[LoopEvent]:
    """The loop, step by step. The last event is ``answer`` (with the ``LoopResult``)."""
    if not 1 <= max_iterations <= MAX_ITERATIONS:
        raise ApplicationError(
            f"Between 1 and {MAX_ITERATIONS}.", fields={"max_iterations": ["out of range"]}
        )
    offered_list = await _off_loop(tools_resolve, actor, tools)
    offered = {tool.name: tool for tool in offered_list}
    definitions = [tool.openai() for tool in offered_list]
    run_id = run_id or uuid.uuid4()
    conversation: list[Mapping[str, Any]] = [dict(message) for message in messages]
    steps: list[LoopStep] = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    yield LoopEvent("run", {"run_id": str(run_id), "tools": sorted(offered)})
    answer: str | None = None
    stopped = "max_iterations"
    for iteration in range(1, max_iterations + 1):
        request: dict[str, Any] = {"tools": definitions, **options}
        if tool_choice is not None:
            request["tool_choice"] = tool_choice if iteration == 1 else "auto"
        if not parallel:
            request["parallel_tool_calls"] = False
        completion = await complete_async(conversation, actor=actor, model=model, **request)
        choice = (completion.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        for key in usage:
            usage[key] += int((completion.get("usage") or {}).get(key) or 0)
        conversation.append(_assistant(message))
        calls = list(message.get("tool_calls") or [])
        yield LoopEvent(
            "model",
            {
                "iteration": iteration,
                "message": _assistant(message),
                "finish_reason": choice.get("finish_reason"),
                "model": completion.get("model"),
            },
        )
        if not calls:
            answer = message.get("content") if isinstance(message.get("content"), str) else None
            steps.append(
                LoopStep(iteration, _assistant(message), choice.get("finish_reason"),
                         completion.get("model"), dict(completion.get("usage") or {}))
            )  # fmt: skip
            stopped = "answer"
            break
        # Calls of one turn run side by side on the pool's threads when parallel.
        if parallel and len(calls) > 1:
            traces = await asyncio.gather(
                *(
                    _off_loop(_call_sync, actor, call, offered, run_id, max_result_tokens)
                    for call in calls
                )
            )
        else:
            traces = [
                await _off_loop(_call_sync, actor, call, offered, run_id, max_result_tokens)
                for call in calls
            ]
        for trace in traces:
            conversation.append(
                {"role": "tool", "tool_call_id": trace.id, "content": trace.content}
            )
            yield LoopEvent("tool", {"iteration": iteration, **_trace_data(trace)})
        steps.append(
            LoopStep(iteration, _assistant(message), choice.get("finish_reason"),
                     completion.get("model"), dict(completion.get("usage") or {}), tuple(traces))
        )  # fmt: skip
    result = LoopResult(
        run_id=run_id,
        answer=answer,
        stopped=stopped,
        iterations=len(steps),
        steps=tuple(steps),
        messages=tuple(conversation),
        usage=dict(usage),
    )
    yield LoopEvent(
        "answer",
        {"run_id": str(run_id), "answer": answer, "stopped": stopped,
         "iterations": len(steps), "usage": dict(usage), "result": result},
    )  # fmt: skip


async def run_with_tools_async(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[str],
    model: str = "lumina/auto",
    *,
    actor: Actor,
    **options: Any,
) -> LoopResult:
    result: LoopResult | None = None
    async for event in run_with_tools_events(messages, tools, model, actor=actor, **options):
        if event.kind == "answer":
            result = event.data["result"]
    assert result is not None  # noqa: S101 (the generator always ends with its answer)
    return result


def run_with_tools(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[str],
    model: str = "lumina/auto",
    *,
    actor: Actor,
    **options: Any,
) -> LoopResult:
    """``run_with_tools_async`` for synchronous callers (views, commands)."""
    return _run(run_with_tools_async(messages, tools, model, actor=actor, **options))


__all__ = [
    "LoopEvent",
    "LoopResult",
    "LoopStep",
    "ToolCallTrace",
    "run_with_tools",
    "run_with_tools_async",
    "run_with_tools_events",
    "tools_resolve",
]
