"""Request context: a request id on every log line and on the response, an access log,
and ``Cache-Control: no-store`` on API answers."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async

logger = structlog.get_logger("lumina.access")

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PRIVATE_PREFIXES = ("/api/v1/", "/v1/")


def _request_id(request) -> str:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    return incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Honours a well-formed incoming ``X-Request-ID`` (or makes one) and returns it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started = self._begin(request)
        response = self.get_response(request)
        return self._finish(request, response, started)

    async def __acall__(self, request):
        started = self._begin(request)
        response = await self.get_response(request)
        return self._finish(request, response, started)

    def _begin(self, request) -> float:
        request.request_id = _request_id(request)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request.request_id)
        return time.perf_counter()

    def _finish(self, request, response, started: float):
        response[REQUEST_ID_HEADER] = request.request_id
        if request.path.startswith(_PRIVATE_PREFIXES) and "Cache-Control" not in response:
            # API answers are per caller and may carry secrets shown once (new tokens,
            # backup codes, decrypted values): no shared or browser cache may keep them.
            response["Cache-Control"] = "no-store"
        # Only a user a view already loaded: resolving the session's lazy user here would
        # query the database from async code (an unmatched URL with a cookie became a 500).
        user = getattr(request.__dict__.get("user"), "_wrapped", request.__dict__.get("user"))
        user = user if hasattr(user, "is_authenticated") else None
        logger.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            user_id=str(user.pk) if user is not None and user.is_authenticated else None,
        )
        return response


class ProbeMiddleware:
    """Serves the health probes and /metrics ahead of the rest of the stack.

    Orchestrators and Prometheus reach a pod by its address, not the public host name, so
    these routes must not be refused by ALLOWED_HOSTS validation (CommonMiddleware),
    redirected to HTTPS, or depend on sessions. They carry no user data.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        from lumina.platform import views

        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self.async_routes = {"/health/live": views.live, "/health/ready": views.ready}
        self.sync_routes = {"/metrics": views.metrics}

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        if view := self.async_routes.get(request.path_info):
            return async_to_sync(view)(request)
        if view := self.sync_routes.get(request.path_info):
            return view(request)
        return self.get_response(request)

    async def __acall__(self, request):
        if view := self.async_routes.get(request.path_info):
            return await view(request)
        if view := self.sync_routes.get(request.path_info):
            return await sync_to_async(view)(request)
        return await self.get_response(request)
