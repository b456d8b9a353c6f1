"""The OpenAPI document of the ``/v1`` gateway: OpenAI's API as Lumina serves it.

The gateway is a plain ASGI application (``gateway.py``, ADR 0005), so drf-spectacular
cannot see it; this document is written by hand, and ``/api/docs/`` offers it beside the
REST API's. It describes what Lumina checks and adds; OpenAI's own reference documents
every field of the bodies, which Lumina passes to the provider as they are.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERRORS = {
    "400": "The body is invalid; `param` names the field (`invalid_request_error`).",
    "401": "No valid Lumina API token (`invalid_api_key`).",
    "402": "The remaining budget does not cover the request (`budget_exceeded`).",
    "403": "The token may not use this model (`permission_denied`).",
    "404": "No model answers to `model` (`model_not_found`).",
    "413": "The body is larger than `LUMINA_MAX_REQUEST_BYTES`.",
    "429": "A budget's rate limit; `Retry-After` says when to try again.",
    "502": "Every candidate provider failed.",
    "503": "No provider can serve the model now (disabled, circuits open).",
    "504": "The provider did not answer in time.",
}
_HEADERS = {
    "X-Request-ID": {
        "description": "The request's id (an incoming well-formed one is kept); on every "
        "log line of the request.",
        "schema": {"type": "string"},
    },
    "X-Lumina-Overhead-Ms": {
        "description": "Milliseconds Lumina added: the request's time less the provider's.",
        "schema": {"type": "number"},
    },
}


def _errors(*statuses: str) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": _ERROR}},
        }
        if status == "429":
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        responses[status] = response
    return responses


_MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {
            "type": "string",
            "enum": ["system", "developer", "user", "assistant", "tool", "function"],
        },
        "content": {
            "description": "Text, or an array of content parts (text, image_url, "
            "input_audio, file, refusal).",
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
            "nullable": True,
        },
        "name": {"type": "string"},
        "tool_calls": {"type": "array", "items": {"type": "object"}},
        "tool_call_id": {"type": "string"},
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Lumina OpenAI-compatible gateway (/v1)",
        "version": "0.1.0",
        "description": (
            "OpenAI's API as Lumina serves it: point any OpenAI SDK at "
            "`http://<lumina>/v1` with a Lumina API token as its API key. Lumina "
            "authenticates the token, checks the body, authorises `providers.use` on the "
            "model, selects a deployment (`model` may be a name, an alias, `provider/model` "
            "or `lumina/auto[:cheapest|fastest|balanced|priority|weighted]`), reserves the "
            "budget, calls the provider with retries and fallback, and records usage and "
            "cost. Request and response bodies are OpenAI's; see OpenAI's API reference for "
            "every field. Errors have OpenAI's shape, "
            '`{"error": {"message", "type", "param", "code"}}`. The REST API (providers, '
            "tokens, costs) has its own document: /api/schema/."
        ),
    },
    "externalDocs": {
        "description": "OpenAI API reference (the bodies)",
        "url": "https://platform.openai.com/docs/api-reference",
    },
    "tags": [{"name": "gateway", "description": "The OpenAI-compatible API."}],
    "security": [{"apiToken": []}],
    "paths": {
        "/v1/chat/completions": {
            "post": {
                "tags": ["gateway"],
                "operationId": "v1_chat_completions",
                "summary": "Create a chat completion, streamed or whole",
                "description": (
                    'With `"stream": true` the answer is a stream of server-sent events '
                    "(`data: {chunk}`), ending with `data: [DONE]`; with "
                    '`stream_options: {"include_usage": true}` a last chunk carries the usage. '
                    "Before the first chunk a failing provider falls back to the next "
                    "candidate; after it, a failure is an in-band error event and the stream "
                    "ends without `[DONE]`."
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The completion (`chat.completion`), or its stream.",
                        "headers": _HEADERS,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ChatCompletion"}
                            },
                            "text/event-stream": {
                                "schema": {
                                    "type": "string",
                                    "description": "`data: {chat.completion.chunk}` events, "
                                    "then `data: [DONE]`.",
                                }
                            },
                        },
                    },
                    **_errors(*_ERRORS),
                },
            }
        },
        "/v1/embeddings": {
            "post": {
                "tags": ["gateway"],
                "operationId": "v1_embeddings",
                "summary": "Embed texts",
                "description": "A fresh install serves `all-MiniLM-L6-v2` (384 dimensions) "
                "offline.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/EmbeddingsRequest"}
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "One embedding per input, in order (`list`).",
                        "headers": _HEADERS,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Embeddings"}
                            }
                        },
                    },
                    **_errors(*_ERRORS),
                },
            }
        },
        "/v1/models": {
            "get": {
                "tags": ["gateway"],
                "operationId": "v1_models",
                "summary": "List the models the token can call",
                "description": "`lumina/auto` first, then each enabled model once.",
                "responses": {
                    "200": {
                        "description": "A `list` of `model` objects.",
                        "headers": {"X-Request-ID": _HEADERS["X-Request-ID"]},
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ModelList"}
                            }
                        },
                    },
                    **_errors("401", "403"),
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "apiToken": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "lum_<43 url-safe characters>",
                "description": "A Lumina API token, as the OpenAI SDK's `api_key`.",
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["message", "type", "param", "code"],
                        "properties": {
                            "message": {"type": "string"},
                            "type": {
                                "type": "string",
                                "description": "`invalid_request_error`, "
                                "`authentication_error`, `rate_limit_error`, `api_error` …",
                            },
                            "param": {"type": "string", "nullable": True},
                            "code": {"type": "string", "nullable": True},
                        },
                    }
                },
            },
            "ChatCompletionRequest": {
                "type": "object",
                "required": ["model", "messages"],
                "additionalProperties": True,
                "properties": {
                    "model": {"type": "string", "example": "lumina/auto"},
                    "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
                    "stream": {"type": "boolean", "default": False},
                    "stream_options": {
                        "type": "object",
                        "properties": {"include_usage": {"type": "boolean"}},
                    },
                    "max_tokens": {"type": "integer", "minimum": 1},
                    "max_completion_tokens": {"type": "integer", "minimum": 1},
                    "tools": {"type": "array", "items": {"type": "object"}},
                    "tool_choice": {"oneOf": [{"type": "string"}, {"type": "object"}]},
                    "response_format": {"type": "object"},
                    "temperature": {"type": "number"},
                },
            },
            "ChatCompletion": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "object": {"type": "string", "enum": ["chat.completion"]},
                    "created": {"type": "integer"},
                    "model": {"type": "string"},
                    "choices": {"type": "array", "items": {"type": "object"}},
                    "usage": {"type": "object"},
                },
            },
            "EmbeddingsRequest": {
                "type": "object",
                "required": ["model", "input"],
                "additionalProperties": True,
                "properties": {
                    "model": {"type": "string", "example": "all-MiniLM-L6-v2"},
                    "input": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        ]
                    },
                    "encoding_format": {"type": "string", "enum": ["float", "base64"]},
                },
            },
            "Embeddings": {
                "type": "object",
                "properties": {
                    "object": {"type": "string", "enum": ["list"]},
                    "data": {"type": "array", "items": {"type": "object"}},
                    "model": {"type": "string"},
                    "usage": {"type": "object"},
                },
            },
            "ModelList": {
                "type": "object",
                "properties": {
                    "object": {"type": "string", "enum": ["list"]},
                    "data": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "object": {"type": "string", "enum": ["model"]},
                                "created": {"type": "integer"},
                                "owned_by": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def gateway_schema(request) -> JsonResponse:
    """``GET /api/schema/gateway/``: the document (its paths are relative to this host)."""
    if request.method not in ("GET", "HEAD"):
        message = f'Method "{request.method}" not allowed.'
        response = JsonResponse(
            {"error": {"code": "method_not_allowed", "message": message, "fields": {}}},
            status=405,
        )
        response["Allow"] = "GET, HEAD"
        return response
    return JsonResponse(DOCUMENT)
