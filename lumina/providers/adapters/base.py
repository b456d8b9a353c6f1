"""The small interface every adapter implements, and the errors adapters raise.

Adapters speak OpenAI's Chat Completions and Embeddings shapes on our side, whatever
the provider speaks on the wire. They import only the kernel and ``providers.types``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from lumina.providers.types import Completion, Embeddings, Endpoint


class UpstreamError(Exception):
    """The provider answered with an error, or could not be reached.

    ``status`` is the upstream HTTP status (None when no answer came); ``retryable``
    says whether another attempt (or another candidate) may succeed; ``retry_after``
    is the provider's ``Retry-After`` in seconds, when it sent one. ``code`` is Lumina's
    (``upstream_rate_limited``, ``upstream_unreachable``, ``upstream_stream_cut`` …);
    ``provider_code`` is the provider's own error type or code, when it sent one.
    ``message`` never carries the API key.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        code: str = "upstream_error",
        provider_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code
        self.provider_code = provider_code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status}, "
            f"retryable={self.retryable}, retry_after={self.retry_after}, code={self.code!r})"
        )


class UpstreamTimeout(UpstreamError):
    def __init__(self, message: str = "the provider did not answer in time") -> None:
        super().__init__(message, retryable=True, code="upstream_timeout")


class UpstreamProtocolError(UpstreamError):
    """The provider's answer did not follow its own wire format (e.g. malformed SSE)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, code="upstream_protocol_error")


class Adapter(Protocol):
    async def chat(self, endpoint: Endpoint, request: dict[str, Any]) -> Completion:
        """A whole completion. ``request`` is an OpenAI Chat Completions body."""

    def stream(self, endpoint: Endpoint, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """OpenAI ``chat.completion.chunk`` dicts as they arrive.

        The last chunk carries ``usage`` (empty ``choices``) whenever the provider reports
        usage. A stream that ends without the provider's end marker raises
        ``UpstreamError`` (code ``upstream_stream_cut``) instead of ending cleanly.
        """

    async def embed(self, endpoint: Endpoint, request: dict[str, Any]) -> Embeddings:
        """Embeddings for an OpenAI Embeddings body (``input`` is a string or list)."""
