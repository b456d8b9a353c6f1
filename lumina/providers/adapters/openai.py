"""OpenAI's wire format: OpenAI itself, Azure OpenAI and OpenAI-compatible servers.

Bodies pass through nearly untouched (only ``model`` and the stream options change), and
stream chunks are yielded exactly as the provider sent them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from lumina.providers.adapters import http
from lumina.providers.adapters.base import UpstreamError, UpstreamProtocolError
from lumina.providers.adapters.sse import SSEParser, load_json
from lumina.providers.types import Completion, Embeddings, Endpoint, ProviderKind, Usage

# Used when an Azure provider is registered without an api-version.
AZURE_DEFAULT_API_VERSION = "2024-10-21"
_DONE = b"[DONE]"
_JSON = "application/json"
# Mid-stream error types after which trying again (elsewhere) may work.
_RETRYABLE_STREAM_ERRORS = frozenset(
    {"server_error", "rate_limit_exceeded", "overloaded", "overloaded_error", "timeout"}
)


def _headers(endpoint: Endpoint) -> dict[str, str]:
    headers = {"Content-Type": _JSON}
    if endpoint.api_key:
        if endpoint.kind is ProviderKind.AZURE_OPENAI:
            headers["api-key"] = endpoint.api_key
        else:
            headers["Authorization"] = "Bearer " + endpoint.api_key
    if endpoint.headers:
        headers.update(endpoint.headers)
    return headers


def _url(endpoint: Endpoint, operation: str) -> str:
    base = endpoint.base_url.rstrip("/")
    if endpoint.kind is ProviderKind.AZURE_OPENAI:
        version = endpoint.api_version or AZURE_DEFAULT_API_VERSION
        return f"{base}/openai/deployments/{endpoint.model}/{operation}?api-version={version}"
    # ``base_url`` is the API root, as the OpenAI SDK takes it: "https://api.openai.com/v1".
    return f"{base}/{operation}"


def _body(endpoint: Endpoint, request: dict[str, Any]) -> dict[str, Any]:
    body = dict(request)
    if endpoint.kind is ProviderKind.AZURE_OPENAI:
        body.pop("model", None)  # the deployment in the URL names the model
    else:
        body["model"] = endpoint.model
    return body


def stream_error(endpoint: Endpoint, error: Any) -> UpstreamError:
    """An ``UpstreamError`` for a ``data: {"error": …}`` event in the middle of a stream."""
    if isinstance(error, dict):
        message = str(error.get("message") or "no error message")
        code = error.get("code") or error.get("type")
    else:
        message, code = str(error), None
    return http.stream_error(
        endpoint,
        message,
        provider_code=code,
        retryable=str(code) in _RETRYABLE_STREAM_ERRORS,
    )


class OpenAIAdapter:
    """Chat Completions and Embeddings over OpenAI's own wire format."""

    async def chat(self, endpoint: Endpoint, request: dict[str, Any]) -> Completion:
        body = _body(endpoint, request)
        body.pop("stream", None)
        body.pop("stream_options", None)
        response = await http.post(
            endpoint, _url(endpoint, "chat/completions"), orjson.dumps(body), _headers(endpoint)
        )
        await http.check(response, endpoint)
        answer = await http.read_json(response, endpoint)
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
            raise UpstreamProtocolError(f"{endpoint.provider_name}'s answer has no choices")
        return Completion(body=answer, usage=Usage.from_openai(answer.get("usage")))

    async def stream(
        self, endpoint: Endpoint, request: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        body = _body(endpoint, request)
        body["stream"] = True
        options = body.get("stream_options")
        # Always ask for the final usage chunk: without it the cost is a guess.
        body["stream_options"] = (
            {**options, "include_usage": True}
            if isinstance(options, dict)
            else {"include_usage": True}
        )
        response = await http.post(
            endpoint, _url(endpoint, "chat/completions"), orjson.dumps(body), _headers(endpoint)
        )
        await http.check(response, endpoint)
        name = endpoint.provider_name
        if response.content_type == _JSON:
            response.release()
            raise UpstreamProtocolError(f"{name} answered JSON to a streamed request")
        import aiohttp  # loaded by adapters.http with the first provider call

        parser = SSEParser()
        done = False
        try:
            async for raw in response.content.iter_any():
                for _, data in parser.feed(raw):
                    if data == _DONE:
                        done = True
                        break
                    chunk = load_json(data, name)
                    if not isinstance(chunk, dict):
                        raise UpstreamProtocolError(f"{name} sent an event that is not an object")
                    if "error" in chunk:
                        raise stream_error(endpoint, chunk["error"])
                    yield chunk
                if done:
                    break
        except TimeoutError:
            raise http.timed_out(endpoint, "waiting for the next chunk") from None
        except aiohttp.ClientError as exc:
            raise http.stream_cut(endpoint, exc) from None
        finally:
            if not done:  # broke, failed, or the consumer stopped early
                response.close()
        if not done:
            raise http.stream_cut(endpoint, "no [DONE] before the connection ended")
        await http.finish(response)

    async def embed(self, endpoint: Endpoint, request: dict[str, Any]) -> Embeddings:
        body = _body(endpoint, request)
        response = await http.post(
            endpoint, _url(endpoint, "embeddings"), orjson.dumps(body), _headers(endpoint)
        )
        await http.check(response, endpoint)
        answer = await http.read_json(response, endpoint)
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise UpstreamProtocolError(f"{endpoint.provider_name}'s answer has no data")
        return Embeddings(body=answer, usage=Usage.from_openai(answer.get("usage")))
