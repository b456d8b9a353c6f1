"""Helpers for the adapter tests: endpoints aimed at loopback upstreams, stream collection."""

from __future__ import annotations

import uuid
from typing import Any

from lumina.providers.adapters.base import Adapter
from lumina.providers.types import Endpoint, ProviderKind

API_KEY = "sk-test-SECRET-0123456789abcdef"


def endpoint(
    kind: ProviderKind,
    base_url: str,
    *,
    model: str = "gpt-4o-mini",
    api_key: str | None = API_KEY,
    read_timeout: float = 5.0,
    connect_timeout: float = 2.0,
    api_version: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Endpoint:
    return Endpoint(
        provider_id=uuid.uuid4(),
        provider_name=f"test-{kind.value}",
        kind=kind,
        base_url=base_url,
        model=model,
        api_key=api_key,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        api_version=api_version,
        headers=headers,
    )


async def collect(adapter: Adapter, target: Endpoint, request: dict[str, Any]) -> list[dict]:
    return [chunk async for chunk in adapter.stream(target, request)]


async def collect_into(
    received: list[dict[str, Any]], adapter: Adapter, target: Endpoint, request: dict[str, Any]
) -> None:
    """Like ``collect``, keeping what arrived before the stream failed."""
    async for chunk in adapter.stream(target, request):
        received.append(chunk)


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )


def chat_request(**extra: Any) -> dict[str, Any]:
    return {"model": "public-name", "messages": [{"role": "user", "content": "Hi there"}], **extra}
