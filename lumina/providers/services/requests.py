"""Checks of OpenAI-shaped request bodies, before anything is selected or spent.

Hand-written rather than a serializer: it runs on every gateway request, and a clear
``param`` in the error matters more to SDK users than a full schema.
"""

from __future__ import annotations

from typing import Any

from lumina.kernel.errors import ApplicationError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})


class InvalidRequestError(ApplicationError):
    """The body is not a valid request; ``param`` names the offending field."""

    code = "invalid_request"
    status = 400

    def __init__(self, message: str, *, param: str, code: str | None = None) -> None:
        super().__init__(message, fields={param: [message]}, code=code)
        self.param = param


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(f"'{name}' must be a positive integer.", param=name)
    return value


def _content(content: Any, param: str, *, required: bool) -> None:
    if content is None:
        if required:
            raise InvalidRequestError(f"'{param}' is required.", param=param)
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidRequestError(f"'{param}' must be a string or a list of parts.", param=param)
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(part, dict) or part.get("type") not in PART_TYPES:
            raise InvalidRequestError(
                f"'{where}' must be an object whose 'type' is one of {sorted(PART_TYPES)}.",
                param=where,
            )
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise InvalidRequestError(f"'{where}.text' must be a string.", param=f"{where}.text")
        if part["type"] == "image_url":
            image = part.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                raise InvalidRequestError(
                    f"'{where}.image_url.url' must be a string.", param=f"{where}.image_url"
                )


def chat_request_check(body: Any) -> dict[str, Any]:
    """The body, if it is a Chat Completions request Lumina can serve."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", param="body")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError("'model' is required and must be a string.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' must be a non-empty list.", param="messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"'{where}' must be an object.", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequestError(
                f"'{where}.role' must be one of {sorted(ROLES)}.", param=f"{where}.role"
            )
        has_tool_calls = role == "assistant" and message.get("tool_calls")
        _content(message.get("content"), f"{where}.content", required=not has_tool_calls)
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise InvalidRequestError(
                f"'{where}.tool_call_id' is required for tool messages.",
                param=f"{where}.tool_call_id",
            )
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError("'stream' must be a boolean.", param="stream")
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    n = _positive_int(body, "n")
    if n is not None and n != 1:
        raise InvalidRequestError("Only 'n': 1 is supported.", param="n", code="unsupported")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequestError("'tools' must be a list.", param="tools")
        for index, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise InvalidRequestError(
                    f"'tools[{index}].function.name' is required.", param=f"tools[{index}]"
                )
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequestError("'stream_options' must be an object.", param="stream_options")
    return body


def embeddings_request_check(body: Any) -> dict[str, Any]:
    """The body, if it is an Embeddings request with text input."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", param="body")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError("'model' is required and must be a string.", param="model")
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise InvalidRequestError(
            "'input' must be a string or a non-empty list of strings.", param="input"
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            raise InvalidRequestError(
                f"'input[{index}]' must be a non-empty string (token arrays are not supported).",
                param=f"input[{index}]",
            )
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise InvalidRequestError(
            "'encoding_format' must be 'float' or 'base64'.", param="encoding_format"
        )
    return body


def max_output_tokens(body: dict[str, Any]) -> int | None:
    return body.get("max_completion_tokens") or body.get("max_tokens")
