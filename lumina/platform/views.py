"""Liveness and readiness probes as JSON."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from lumina.platform.health import readiness_checks, run_checks
from lumina.platform.http.errors import error_response


def _only_get(request) -> JsonResponse | None:
    if request.method in ("GET", "HEAD"):
        return None
    response = error_response(405, "method_not_allowed", f'Method "{request.method}" not allowed.')
    response["Allow"] = "GET, HEAD"
    return response


@csrf_exempt  # probes never carry cookies; a POST gets 405, not a CSRF page
async def live(request) -> JsonResponse:
    """The process is up and serving; no dependencies are consulted."""
    return _only_get(request) or JsonResponse({"status": "ok"})


@csrf_exempt
async def ready(request) -> JsonResponse:
    """Every dependency Lumina needs to serve traffic answers."""
    refused = _only_get(request)
    if refused:
        return refused
    healthy, checks = await sync_to_async(run_checks)(readiness_checks())
    status = "ok" if healthy else "error"
    return JsonResponse({"status": status, "checks": checks}, status=200 if healthy else 503)
