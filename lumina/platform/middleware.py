"""Request context: a request id on every log line and on the response, an access log,
and ``Cache-Control: no-store`` on API answers."""

from __future__ import annotations

import time

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.utils.functional import LazyObject, empty

from lumina.kernel.observability import REQUEST_ID_HEADER, access_log, request_begin

_PRIVATE_PREFIXES = ("/api/v1/", "/v1/")
# Probes answered by asynchronous views, on the event loop.
ASYNC_PROBES = frozenset({"/health/live", "/health/ready"})


def _resolved_user_id(request) -> object | None:
    """The id of the user this request was already found to be, or None.

    Never loads the user: the session's user is a lazy object, and resolving it here
    would query the database, which Django refuses inside async code (a 404 with a
    session cookie then became a 500). A view that needed the user has resolved it.
    """
    user = request.__dict__.get("user")
    while isinstance(user, LazyObject):
        user = user._wrapped
        if user is empty:
            return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


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
        request.request_id = request_begin(request.headers.get(REQUEST_ID_HEADER))
        return time.perf_counter()

    def _finish(self, request, response, started: float):
        response[REQUEST_ID_HEADER] = request.request_id
        if request.path.startswith(_PRIVATE_PREFIXES) and "Cache-Control" not in response:
            # API answers are per caller and may carry secrets shown once (new tokens,
            # backup codes, decrypted values): no shared or browser cache may keep them.
            response["Cache-Control"] = "no-store"
        access_log(
            method=request.method,
            path=request.path,
            status=response.status_code,
            started=started,
            user_id=_resolved_user_id(request),
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
