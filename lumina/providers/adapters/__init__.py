"""One adapter per provider kind, each speaking OpenAI's shapes on our side.

``adapter_for(kind)`` hands out process-wide singletons: adapters keep no per-request
state, and share the pooled HTTP client of ``adapters.http``.
"""

from __future__ import annotations

from lumina.providers.adapters.anthropic import AnthropicAdapter
from lumina.providers.adapters.base import (
    Adapter,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from lumina.providers.adapters.http import close_sessions
from lumina.providers.adapters.local import LocalAdapter
from lumina.providers.adapters.ollama import OllamaAdapter
from lumina.providers.adapters.openai import OpenAIAdapter
from lumina.providers.types import ProviderKind

_openai = OpenAIAdapter()
_ADAPTERS: dict[ProviderKind, Adapter] = {
    ProviderKind.OPENAI: _openai,
    ProviderKind.AZURE_OPENAI: _openai,
    ProviderKind.OPENAI_COMPATIBLE: _openai,
    ProviderKind.ANTHROPIC: AnthropicAdapter(),
    ProviderKind.OLLAMA: OllamaAdapter(),
    ProviderKind.LOCAL: LocalAdapter(),
}


def adapter_for(kind: ProviderKind) -> Adapter:
    """The adapter for a provider kind (``ProviderKind`` or its string value)."""
    return _ADAPTERS[ProviderKind(kind)]


__all__ = [
    "Adapter",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "adapter_for",
    "close_sessions",
]
