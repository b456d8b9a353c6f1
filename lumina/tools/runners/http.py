"""The runner for ``http`` tools: one request to an allow-listed URL through the outbound guard.

The URL must still be on the allow-list when the tool runs (an entry removed since the
tool was saved stops it), and every address connected to passes the kernel's outbound
policy (``requests_session``: no redirects, a name resolving to loopback, private or
metadata addresses is refused). Arguments go as the JSON body, or as query parameters
for ``GET``. The answer is read up to the tool's output limit under one deadline; JSON
answers become the result as JSON, others as text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import requests
import structlog

from lumina.kernel import outbound
from lumina.tools.selectors.registry import http_url_allowed
from lumina.tools.types import ExecutionStatus, RunOutcome, ToolSpec

logger = structlog.get_logger(__name__)
CHUNK = 64 * 1024


def _query(arguments: Mapping[str, Any]) -> dict[str, str]:
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in arguments.items()
    }


def run_http(spec: ToolSpec, arguments: Mapping[str, Any]) -> RunOutcome:
    started = time.perf_counter()
    deadline = started + spec.limits.timeout_seconds

    def outcome(status: ExecutionStatus, **fields: Any) -> RunOutcome:
        return RunOutcome(
            status, duration_ms=round((time.perf_counter() - started) * 1000, 3), **fields
        )

    if not http_url_allowed(spec.http_url):
        return outcome(
            ExecutionStatus.REFUSED,
            error="The tool's URL is no longer on the HTTP tools' allow-list.",
            error_code="not_allowed",
        )
    try:
        outbound.check_url(spec.http_url, field="http_url")
    except outbound.OutboundRefused as exc:
        return outcome(ExecutionStatus.REFUSED, error=exc.message, error_code="outbound_refused")
    kwargs: dict[str, Any] = (
        {"params": _query(arguments)} if spec.http_method == "GET" else {"json": dict(arguments)}
    )
    session = outbound.requests_session()
    try:
        with session.request(
            spec.http_method,
            spec.http_url,
            timeout=(min(5.0, spec.limits.timeout_seconds), spec.limits.timeout_seconds),
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/json, text/plain;q=0.9, */*;q=0.1"},
            **kwargs,
        ) as response:
            body = bytearray()
            for chunk in response.iter_content(CHUNK):
                body.extend(chunk)
                if len(body) > spec.limits.output_bytes:
                    return outcome(
                        ExecutionStatus.LIMIT_EXCEEDED,
                        error=f"The answer is larger than {spec.limits.output_bytes} bytes.",
                        error_code="output_size",
                    )
                if time.perf_counter() > deadline:
                    return outcome(
                        ExecutionStatus.TIMEOUT,
                        error=f"No complete answer within {spec.limits.timeout_seconds} s.",
                        error_code="wall_clock",
                    )
            status_code = response.status_code
            content_type = response.headers.get("Content-Type", "")
    except requests.RequestException as exc:
        refusal = outbound.refusal_in(exc)
        if refusal is not None:
            return outcome(
                ExecutionStatus.REFUSED,
                error=f"The outbound policy refuses {refusal.host}: {refusal.reason}.",
                error_code="outbound_refused",
            )
        if isinstance(exc, requests.TooManyRedirects):
            return outcome(
                ExecutionStatus.FAILED,
                error="The tool's server answered with a redirect, which is not followed.",
                error_code="redirect",
            )
        if isinstance(exc, requests.Timeout):
            return outcome(
                ExecutionStatus.TIMEOUT,
                error=f"No answer within {spec.limits.timeout_seconds} s.",
                error_code="wall_clock",
            )
        logger.info("http tool failed", tool=spec.name, error=type(exc).__name__)
        return outcome(
            ExecutionStatus.FAILED,
            error="The tool's server could not be reached.",
            error_code="connection",
        )
    finally:
        session.close()
    text = body.decode("utf-8", errors="replace")
    if status_code >= 300:
        return outcome(
            ExecutionStatus.FAILED,
            error=f"The tool's server answered HTTP {status_code}.",
            error_code="upstream_status",
            stderr=text[:2000],
            resource_use={"http_status": status_code, "bytes": len(body)},
        )
    result: Any = text
    if "json" in content_type:
        try:
            result = json.loads(text)
        except ValueError:
            return outcome(
                ExecutionStatus.FAILED,
                error="The tool's server sent invalid JSON.",
                error_code="result",
                resource_use={"http_status": status_code, "bytes": len(body)},
            )
    return outcome(
        ExecutionStatus.SUCCEEDED,
        result=result,
        resource_use={"http_status": status_code, "bytes": len(body)},
    )
