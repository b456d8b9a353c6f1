"""The OpenAPI document: every operation tagged by its context, every error it can answer.

Views document their success responses; the error responses are derived here, once, from
what DRF and the platform will do with the view, so a new endpoint is documented without
anyone listing statuses by hand:

- 400 when the operation takes input: a request body, query parameters or path parameters;
- 401 when the view authenticates (a bad ``Authorization`` header is refused even where
  anonymous callers are allowed) or requires an authenticated caller;
- 403 when it checks a permission, and for unsafe methods (CSRF on session requests);
- 404 when the path names an object, or the list is paginated (a page past the last);
- 409 when it creates or changes an object (a name or other unique value is taken);
- 413 and 415 when it takes a body (the platform's size limit, JSON only);
- 429 when it is throttled;
- whatever else the view declares in ``error_statuses`` (e.g. 402 for budgets, 409 for
  conflicts, 502-504 for providers).

Every error response has the one error shape, ``{"error": {"code", "message", "fields"}}``.
The tag of an operation is the context its view lives in (``lumina.<context>.http``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers
from rest_framework.permissions import AllowAny

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every 4xx and 5xx answer of the REST API.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable, machine-readable: `invalid`, `not_found` …",
                },
                "message": {"type": "string", "description": "For people; may change."},
                "fields": {
                    "type": "object",
                    "description": 'Messages per offending input, e.g. `{"name": ["…"]}`.',
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}
DESCRIPTIONS = {
    400: "The input is invalid; `fields` names each offending input.",
    401: "No valid credentials: a missing, malformed, unknown, expired or revoked token, or "
    "no session.",
    402: "The remaining budget does not cover the request.",
    403: "The caller may not do this (permission, second factor, CSRF).",
    404: "No such object, or not one the caller may see.",
    409: "Conflicts with the current state (a duplicate name, an object in use).",
    413: "The request body is larger than `LUMINA_MAX_REQUEST_BYTES`.",
    415: "The request body is not JSON.",
    429: "Too many requests; `Retry-After` says when to try again.",
    502: "The provider answered with an error.",
    503: "No provider can serve the request now.",
    504: "The provider did not answer in time.",
}
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema with Lumina's tags and derived error responses."""

    def get_tags(self) -> list[str]:
        parts = type(self.view).__module__.split(".")
        return [parts[1]] if len(parts) > 2 and parts[0] == "lumina" else super().get_tags()

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for status in sorted(self.error_statuses()):
            responses.setdefault(str(status), self._error_response(status))
        return responses

    def _get_parameters(self) -> list[dict[str, Any]]:
        parameters = super()._get_parameters()
        for parameter in parameters:
            # DRF reads query parameters as form input: an empty optional one is "not given".
            if parameter.get("in") == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
        return parameters

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions=False) -> dict:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        pattern = schema.get("pattern", "")
        if isinstance(field, serializers.DecimalField) and pattern.startswith(r"^-?\d{0,"):
            # drf-spectacular's pattern admits "" and "-"; a decimal needs a digit.
            whole = field.max_whole_digits
            places = field.decimal_places
            schema["pattern"] = (
                rf"^-?(?:\d{{1,{whole}}}(?:\.\d{{0,{places}}})?|\.\d{{1,{places}}})$"
            )
        return schema

    def error_statuses(self) -> set[int]:
        """The error statuses this operation can answer, derived from its view."""
        view, method = self.view, self.method
        takes_body = method in ("POST", "PUT", "PATCH") and self.get_request_serializer()
        parameters = self._get_parameters()
        in_path = any(p.get("in") == "path" for p in parameters)
        statuses: set[int] = set(getattr(view, "error_statuses", ()))
        if takes_body or parameters:
            statuses.add(400)
        if takes_body:
            statuses |= {413, 415}
        if method in ("PUT", "PATCH") or (method == "POST" and self._is_create_operation()):
            statuses.add(409)  # a name or other unique value already taken
        if in_path or (self._is_list_view() and self._get_paginator()):
            statuses.add(404)  # no such object; or a page past the last
        permissions = view.get_permissions()
        guarded = any(not isinstance(permission, AllowAny) for permission in permissions)
        if view.get_authenticators() or guarded:
            statuses.add(401)
        if guarded or method in UNSAFE:
            statuses.add(403)
        if view.get_throttles():
            statuses.add(429)
        return statuses

    def _error_response(self, status: int) -> dict[str, Any]:
        component = ResolvedComponent(
            name=ERROR_COMPONENT,
            type=ResolvedComponent.SCHEMA,
            object=ERROR_COMPONENT,
            schema=ERROR_SCHEMA,
        )
        self.registry.register_on_missing(component)
        response: dict[str, Any] = {
            "description": DESCRIPTIONS.get(status, "An error."),
            "content": {"application/json": {"schema": component.ref}},
        }
        if status == 429:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer"},
                }
            }
        return response


DESCRIPTION = """\
Self-hostable AI platform backend. This document is the REST API under `/api/v1/`; the
OpenAI-compatible gateway under `/v1/` has [a document of its own](/api/schema/gateway/)
(choose **OpenAI-compatible gateway (/v1)** at the top of this page).

**Authentication.** `Authorization: Bearer lum_…` with an API token (from
`POST /api/v1/auth/tokens` or `manage.py security token create`), or a session from
`POST /api/v1/auth/login` (unsafe methods then need the CSRF token from
`GET /api/v1/auth/csrf` in `X-CSRFToken`). What a caller may do is decided by roles, object
grants, policies and the token's scopes.

**Errors.** Every 4xx and 5xx answer has one shape,
`{"error": {"code": "…", "message": "…", "fields": {"name": ["…"]}}}`: `code` is stable,
`message` is for people, `fields` names each offending input. JSON bodies must use the
types this document gives (`0` is not `false`, `12` is not `"12"`; decimals are strings),
and strings may not contain NUL characters. Every response carries `X-Request-ID`.

**The gateway, `/v1`.** OpenAI's API as Lumina serves it, for any OpenAI SDK: `POST
/v1/chat/completions` (streamed as server-sent events with `"stream": true`, or whole),
`POST /v1/embeddings`, `GET /v1/models`. Authenticate with a Lumina API token as the SDK's
API key (`Authorization: Bearer lum_…`). `model` is a model name, an alias,
`provider/model`, or `lumina/auto[:cheapest|fastest|balanced|priority|weighted]`. Responses
carry `X-Request-ID` and `X-Lumina-Overhead-Ms` (the time Lumina added); errors have
OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with `Retry-After` on 429.
"""

TAGS = [
    {"name": "security", "description": "Login, sessions, API tokens, MFA, OIDC, roles, "
     "policies, encryption and the audit log."},
    {"name": "providers", "description": "AI providers and their models, selection, "
     "completions through Lumina's pipeline, usage, costs and budgets. The OpenAI-compatible "
     "`/v1` gateway has its own document: /api/schema/gateway/."},
    {"name": "memory", "description": "Vector collections with hybrid search; memories "
     "(turns, facts, summaries, pinned blocks) with import and time-aware search; context "
     "compression and expansion; topics and the entity graph."},
    {"name": "tools", "description": "The tool registry (JSON Schema contracts, versions), "
     "running tools, their results, the function-calling loop and MCP servers."},
    {"name": "ui", "description": "Collaborative documents (ownership, sharing, exports and "
     "versions; realtime editing is the websocket /ws/documents/{id}/, y-websocket) and "
     "visualizations (Vega-Lite charts bound to Lumina's data sources, rendered with the "
     "data the caller may see)."},
    {"name": "platform", "description": "Operator endpoints: the event outbox."},
]  # fmt: skip


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular hook: the description (with the gateway) and the tags' descriptions."""
    result["info"]["description"] = DESCRIPTION
    used = {tag for path in result.get("paths", {}).values() for op in path.values()
            for tag in op.get("tags", ())}  # fmt: skip
    known = [tag for tag in TAGS if tag["name"] in used]
    result["tags"] = known + [{"name": name} for name in sorted(used - {t["name"] for t in TAGS})]
    result["externalDocs"] = {
        "description": "The OpenAI-compatible gateway (/v1)",
        "url": "/api/schema/gateway/",
    }
    return result
