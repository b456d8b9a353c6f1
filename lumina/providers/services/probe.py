"""Probing a provider: call each model once per capability and record what works.

Declared capabilities are what the registry claims; a probe records what the provider
actually did, with its latency, so selection and operators can trust (or distrust) them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from lumina.providers.adapters import adapter_for
from lumina.providers.adapters.base import UpstreamError
from lumina.providers.types import Capability, DeploymentDTO, Endpoint

# A 1x1 transparent PNG: the smallest image every vision model accepts.
_PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    capability: Capability
    ok: bool
    latency_ms: float
    error: str = ""

    def as_record(self) -> dict[str, Any]:
        return {"ok": self.ok, "latency_ms": round(self.latency_ms, 1), "error": self.error}


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with the single word OK."}],
        "max_tokens": 16,
        **extra,
    }


async def _check_chat(adapter, endpoint: Endpoint) -> None:
    completion = await adapter.chat(endpoint, _chat(endpoint.model))
    if not completion.body.get("choices"):
        raise ValueError("the answer had no choices")


async def _check_streaming(adapter, endpoint: Endpoint) -> None:
    chunks = 0
    async for _chunk in adapter.stream(endpoint, _chat(endpoint.model, stream=True)):
        chunks += 1
    if not chunks:
        raise ValueError("the stream sent no chunks")


async def _check_tools(adapter, endpoint: Endpoint) -> None:
    request = _chat(
        endpoint.model,
        tools=[_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    request["messages"] = [{"role": "user", "content": "What time is it in Paris?"}]
    completion = await adapter.chat(endpoint, request)
    message = completion.body["choices"][0]["message"]
    if not message.get("tool_calls"):
        raise ValueError("the model did not call the tool")


async def _check_vision(adapter, endpoint: Endpoint) -> None:
    request = _chat(endpoint.model)
    request["messages"] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What colour is this image? One word."},
                {"type": "image_url", "image_url": {"url": _PIXEL}},
            ],
        }
    ]
    await adapter.chat(endpoint, request)


async def _check_json_mode(adapter, endpoint: Endpoint) -> None:
    request = _chat(endpoint.model, response_format={"type": "json_object"})
    request["messages"] = [{"role": "user", "content": 'Answer with the JSON {"ok": true}.'}]
    request["max_tokens"] = 32
    completion = await adapter.chat(endpoint, request)
    content = completion.body["choices"][0]["message"].get("content") or ""
    orjson.loads(content)  # raises when the answer is not JSON


async def _check_embeddings(adapter, endpoint: Endpoint) -> None:
    result = await adapter.embed(endpoint, {"model": endpoint.model, "input": ["probe"]})
    if not result.body.get("data") or not result.body["data"][0].get("embedding"):
        raise ValueError("no embedding came back")


CHECKS: dict[Capability, Callable[[Any, Endpoint], Awaitable[None]]] = {
    Capability.CHAT: _check_chat,
    Capability.STREAMING: _check_streaming,
    Capability.TOOLS: _check_tools,
    Capability.VISION: _check_vision,
    Capability.JSON_MODE: _check_json_mode,
    Capability.EMBEDDINGS: _check_embeddings,
}


async def deployment_probe(
    deployment: DeploymentDTO,
    endpoint: Endpoint,
    *,
    capabilities: frozenset[Capability] | None = None,
    timeout: float = 30.0,
) -> list[ProbeResult]:
    """Try each capability (by default those declared) and report what happened."""
    adapter = adapter_for(deployment.provider.kind)
    wanted = capabilities if capabilities is not None else deployment.capabilities
    results = []
    for capability in Capability:
        if capability not in wanted:
            continue
        started = time.perf_counter()
        try:
            await asyncio.wait_for(CHECKS[capability](adapter, endpoint), timeout)
        except UpstreamError as error:
            results.append(_failed(capability, started, f"{error.code}: {error.message}"))
        except (TimeoutError, ValueError, KeyError, IndexError, TypeError) as error:
            results.append(_failed(capability, started, str(error) or type(error).__name__))
        else:
            elapsed = (time.perf_counter() - started) * 1000
            results.append(ProbeResult(capability, ok=True, latency_ms=elapsed))
    return results


def _failed(capability: Capability, started: float, error: str) -> ProbeResult:
    elapsed = (time.perf_counter() - started) * 1000
    return ProbeResult(capability, ok=False, latency_ms=elapsed, error=error[:500])
