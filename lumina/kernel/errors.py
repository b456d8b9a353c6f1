"""The one error hierarchy for use-cases; the HTTP layer maps it to ``{"error": {...}}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ApplicationError(Exception):
    """A use-case refused a request for a reason the caller can act on."""

    code = "application_error"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        fields: Mapping[str, Sequence[str]] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {key: list(value) for key, value in (fields or {}).items()}
        if code is not None:
            self.code = code


class NotFoundError(ApplicationError):
    code = "not_found"
    status = 404


class ConflictError(ApplicationError):
    code = "conflict"
    status = 409


class PermissionDeniedError(ApplicationError):
    code = "permission_denied"
    status = 403


class PayloadTooLargeError(ApplicationError):
    """A request body is larger than ``LUMINA_MAX_REQUEST_BYTES``.

    Raised from an ASGI ``receive`` while a body arrives (``lumina.platform.asgi``), so
    whoever is reading it, Django's handler or the ``/v1`` gateway, stops at once.
    """

    code = "request_too_large"
    status = 413
