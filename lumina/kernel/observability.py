"""Request ids and the access-log line: one implementation for every HTTP entry point.

Django's middleware (``lumina.platform.middleware``) and the ``/v1`` gateway, which does
not go through Django's handler (ADR 0005), both call these, so a request gets its id
and its log line the same way wherever it is served. ``request_begin`` binds the id with
``structlog.contextvars``: every line logged while the request runs carries it (an
asyncio task and ``sync_to_async`` threads see the binding of the request they serve).
"""

from __future__ import annotations

import re
import time
import uuid

import structlog

REQUEST_ID_HEADER = "X-Request-ID"
# Honoured as given when it is short and plain: it is echoed into headers and log lines.
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_logger = structlog.get_logger("lumina.access")


def request_id_from(given: str | None) -> str:
    """``given`` when it is a well-formed id, else a new random one (32 hex digits)."""
    if given and _VALID_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def request_begin(given: str | None, *, fresh_context: bool = False) -> str:
    """Start a request's log context: its id, bound for every line; returns the id.

    ``fresh_context``: the caller runs in a context of its own (an ASGI server's task per
    request), so nothing of an earlier request can linger there and clearing is skipped.
    A thread serving request after request (WSGI, ``sync_to_async``) must clear.
    """
    request_id = request_id_from(given)
    if not fresh_context:
        structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


def access_log(
    *, method: str, path: str, status: int, started: float, user_id: object | None
) -> None:
    """The one line per request: ``started`` is its ``time.perf_counter()`` at arrival."""
    access_logger.info(
        "request",
        method=method,
        path=path,
        status=status,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
        user_id=str(user_id) if user_id is not None else None,
    )
