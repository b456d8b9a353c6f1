"""The providers context's public interface: the only module other contexts may import.

Other contexts (memory's embeddings, tools' function-calling loop) call models here and
get plain values back. Every call goes through selection, budgets, retries and fallback,
and lands in the usage ledger like a ``/v1`` request.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from lumina.providers.selectors.budgets import BudgetDTO, BudgetStatus, budget_statuses
from lumina.providers.selectors.costs import CostRow
from lumina.providers.selectors.overview import ModelOverview, ProviderOverview, provider_overview
from lumina.providers.selectors.registry import catalogue
from lumina.providers.selectors.reports import (
    CircuitChange,
    ErrorRow,
    LatencyRow,
    circuit_changes,
    error_counts,
    latency_percentiles,
    usage_totals,
)
from lumina.providers.selectors.selection import is_development
from lumina.providers.services.completion import (
    StreamInterrupted,
    chat_complete,
    chat_prepare,
    chat_stream,
    embeddings_create,
    embeddings_prepare,
)
from lumina.providers.tokens import (
    count_message_tokens,
    count_message_tokens_async,
    count_text_tokens,
    count_text_tokens_async,
    truncate_text_tokens,
)
from lumina.providers.types import Capability, Strategy, Usage
from lumina.security.api import Actor

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "BudgetDTO",
    "BudgetStatus",
    "Capability",
    "CircuitChange",
    "CostRow",
    "ErrorRow",
    "LatencyRow",
    "ModelOverview",
    "ProviderOverview",
    "Strategy",
    "Usage",
    "budget_statuses",
    "chat_model_names",
    "chat_stream_report",
    "circuit_changes",
    "complete",
    "complete_async",
    "count_message_tokens",
    "count_message_tokens_async",
    "count_text_tokens",
    "count_text_tokens_async",
    "embed",
    "embed_async",
    "error_counts",
    "latency_percentiles",
    "provider_overview",
    "real_chat_model_available",
    "truncate_text_tokens",
    "usage_totals",
]

# Ships with Lumina (ONNX int8 all-MiniLM-L6-v2, 384 dimensions): works with no provider.
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"

T = TypeVar("T")
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on one long-lived loop, so sync callers share its pooled provider connections
    (a fresh loop per call would open, and leak, a connection pool each time)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="providers-api", daemon=True).start()
    return asyncio.run_coroutine_threadsafe(coroutine, _loop).result()


async def embed_async(
    texts: list[str], *, actor: Actor, model: str = DEFAULT_EMBEDDING_MODEL
) -> list[list[float]]:
    """One vector per text, in order."""
    call = await embeddings_prepare(
        actor=actor, body={"model": model, "input": list(texts)}, request_id=uuid.uuid4().hex
    )
    body = await embeddings_create(call)
    ordered = sorted(body["data"], key=lambda item: item["index"])
    return [item["embedding"] for item in ordered]


def embed(
    texts: list[str], *, actor: Actor, model: str = DEFAULT_EMBEDDING_MODEL
) -> list[list[float]]:
    """``embed_async`` for synchronous callers (not from inside an event loop)."""
    return _run(embed_async(texts, actor=actor, model=model))


async def complete_async(
    messages: list[dict[str, Any]],
    *,
    actor: Actor,
    model: str = "lumina/auto",
    strategy: Strategy | None = None,
    **options: Any,
) -> dict[str, Any]:
    """A whole chat completion in OpenAI's response shape (``options``: tools, max_tokens …)."""
    body = {"model": model, "messages": messages, **options, "stream": False}
    call = await chat_prepare(
        actor=actor, body=body, request_id=uuid.uuid4().hex, strategy=strategy
    )
    return await chat_complete(call)


def complete(
    messages: list[dict[str, Any]],
    *,
    actor: Actor,
    model: str = "lumina/auto",
    strategy: Strategy | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``complete_async`` for synchronous callers (not from inside an event loop)."""
    return _run(complete_async(messages, actor=actor, model=model, strategy=strategy, **options))


def real_chat_model_available() -> bool:
    """Whether an enabled chat model other than the development echo model is configured:
    callers with a deterministic fallback (summaries, fact extraction) use a model only
    then, since the echo model would answer "You said: …"."""
    return any(
        d.usable and Capability.CHAT in d.capabilities and not is_development(d)
        for d in catalogue().deployments
    )


def chat_model_names() -> list[str]:
    """The names of the enabled chat models, for a model picker (aliases resolve too)."""
    snapshot = catalogue()
    names = [d.name for d in snapshot.deployments if d.usable and Capability.CHAT in d.capabilities]
    return sorted(set(names))


async def chat_stream_report(
    messages: list[dict[str, Any]],
    *,
    actor: Actor,
    model: str = "lumina/auto",
    strategy: Strategy | None = None,
    request_id: str | None = None,
    **options: Any,
) -> AsyncIterator[dict[str, Any]]:
    """A streamed chat completion as plain events, for a browser: ``selected`` (provider,
    model), ``delta`` (text), then ``report`` (every attempt, usage, cost, Lumina's overhead
    before the first chunk) or ``error`` if the stream broke after it began. Refusals
    before any text (unknown model, budget, no provider) raise the ``ApplicationError``."""
    body = {
        "model": model,
        "messages": messages,
        **options,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    call = await chat_prepare(
        actor=actor, body=body, request_id=request_id or uuid.uuid4().hex, strategy=strategy
    )
    chunks = chat_stream(call)
    try:
        # The first chunk settles which provider serves, or raises before anything is sent.
        chunk = await anext(chunks, None)
        # Lumina's own time until the first chunk (selection, budgets, retries' waits):
        # later, the time is the provider's streaming, not Lumina's.
        overhead_ms = round(call.overhead_seconds * 1000, 2)
        yield {
            "type": "selected",
            "provider": call.deployment.provider.name,
            "model": call.deployment.name,
        }
        try:
            while chunk is not None:
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield {"type": "delta", "content": text}
                chunk = await anext(chunks, None)
        except StreamInterrupted as broken:
            yield {"type": "error", "code": broken.error.code, "message": broken.error.message}
            return
        usage = call.usage or Usage()
        yield {
            "type": "report",
            "provider": call.deployment.provider.name,
            "model": call.deployment.name,
            "attempts": [
                {
                    "provider": a.deployment.provider.name,
                    "model": a.deployment.name,
                    "number": a.number,
                    "outcome": a.outcome,
                    "error_code": a.error_code,
                    "duration_ms": round(a.duration_ms, 2),
                }
                for a in call.attempts
            ],
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "estimated": usage.estimated,
            },
            "cost": str(call.deployment.prices.cost(usage)),
            "ttft_ms": round(call.ttft_ms, 2) if call.ttft_ms is not None else None,
            "overhead_ms": overhead_ms,
        }
    finally:
        await chunks.aclose()
