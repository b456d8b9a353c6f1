"""Liveness and readiness probes as JSON."""

from __future__ import annotations

import hmac

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_prometheus.exports import ExportToDjangoView

from lumina.platform.apps import HEALTH_READ
from lumina.platform.health import readiness_checks, run_checks, summary
from lumina.platform.http.errors import error_response
from lumina.security.api import InvalidTokenError, authenticate_token, authorize, client_ip


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


def _bearer(request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _metrics_token_matches(given: str) -> bool:
    token = settings.LUMINA_METRICS_TOKEN
    return bool(token and given) and hmac.compare_digest(given.encode(), token.encode())


def _may_see_details(request) -> bool:
    """The metrics token, or a Lumina API token whose holder may read health details.

    Raises ``InvalidTokenError`` for a presented token that is neither.
    """
    given = _bearer(request)
    if not given:
        return False
    if _metrics_token_matches(given):
        return True
    actor = authenticate_token(given, ip_address=client_ip(request))
    return authorize(actor, HEALTH_READ).allowed


def _readiness(request) -> JsonResponse:
    try:
        detailed = _may_see_details(request)
    except InvalidTokenError as exc:
        response = error_response(401, exc.code, exc.message)
        response["WWW-Authenticate"] = 'Bearer realm="lumina"'
        return response
    healthy, checks = run_checks(readiness_checks())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks if detailed else summary(checks)},
        status=200 if healthy else 503,
    )


@csrf_exempt
async def ready(request) -> JsonResponse:
    """Every dependency Lumina needs to serve traffic answers.

    Anyone sees each check's status; versions, database names and error text only a caller
    with the metrics token or an API token holding ``platform.health.read`` (Owner, Admin).
    """
    return _only_get(request) or await sync_to_async(_readiness)(request)


def metrics(request) -> HttpResponse:
    """Prometheus exposition; behind a bearer token when LUMINA_METRICS_TOKEN is set."""
    if settings.LUMINA_METRICS_TOKEN and not _metrics_token_matches(_bearer(request)):
        response = error_response(401, "not_authenticated", "A metrics token is required.")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return ExportToDjangoView(request)
