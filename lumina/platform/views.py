"""Liveness and readiness probes as JSON."""

from __future__ import annotations

import hmac

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_prometheus.exports import ExportToDjangoView

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


def metrics(request) -> HttpResponse:
    """Prometheus exposition; behind a bearer token when LUMINA_METRICS_TOKEN is set."""
    token = settings.LUMINA_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            response = error_response(401, "not_authenticated", "A metrics token is required.")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return ExportToDjangoView(request)
