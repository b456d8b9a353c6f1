"""One error shape for every 4xx/5xx: ``{"error": {"code", "message", "fields"}}``."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from lumina.kernel.errors import ApplicationError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(status: int, code: str, message: str, fields=None) -> JsonResponse:
    return JsonResponse(error_body(code, message, fields), status=status)


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"field.sub": ["message", …]}``."""
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            fields.update(_flatten(value, name))
    elif isinstance(detail, list) and detail and all(isinstance(d, str) for d in detail):
        fields[prefix or "non_field_errors"] = [str(d) for d in detail]
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            fields.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        fields[prefix or "non_field_errors"] = [str(detail)]
    return fields


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler: every known error becomes the common shape."""
    if isinstance(exc, ApplicationError):
        set_rollback()
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
        return Response(
            error_body(exc.code, exc.message, exc.fields), status=exc.status, headers=headers
        )
    if isinstance(exc, DjangoValidationError):
        set_rollback()
        fields = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return Response(error_body("invalid", "Invalid input.", fields), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django logs it and renders ``server_error``

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    set_rollback()
    if isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", "Invalid input.", _flatten(exc.detail))
    else:
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        body = error_body(code, str(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)


# Django-level handlers, for routes outside DRF (unknown URLs, admin, health).
def bad_request(request, exception=None) -> JsonResponse:
    return error_response(400, "bad_request", "Bad request.")


def permission_denied(request, exception=None) -> JsonResponse:
    return error_response(403, "permission_denied", "You do not have permission to do this.")


def page_not_found(request, exception=None) -> JsonResponse:
    return error_response(404, "not_found", f"No route for {request.path}.")


def server_error(request) -> JsonResponse:
    return error_response(500, "server_error", "Internal server error.")


def csrf_failure(request, reason: str = "") -> JsonResponse:
    return error_response(403, "csrf_failed", "CSRF verification failed.")
