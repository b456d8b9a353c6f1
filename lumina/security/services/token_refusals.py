"""Refused API tokens, counted per client address and per token prefix, per minute.

Every refused token (malformed, unknown, expired, revoked; REST, the ``/v1`` gateway and
websocket handshakes alike) is counted in memory, which costs an attacker's request
nothing we would notice. When its minute is over, each address and each prefix counted
in it becomes one ``ApiTokensRefused`` event: one audit entry with the counts, however
many requests there were, so an attack shows in the audit log without flooding the
chain. Each process counts its own requests, so N processes write up to N entries for
one key and minute.

A finished minute is published by the next token authentication in the process, refused
or accepted (a comparison of two integers until then), by the web process's timer
(``refusals_timer_start``, every ``TIMER_SECONDS``) when no request comes, or when the
process exits. Memory
is bounded: past ``MAX_KEYS`` distinct keys in a minute, further addresses count as
``address:*`` and further prefixes as ``prefix:*``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime as dt
import ipaddress
import re
import threading
import time

import structlog
from django.db import DatabaseError, connection, transaction

from lumina.kernel.bus import publish_many
from lumina.kernel.concurrency import refuse_on_event_loop
from lumina.security.events.tokens import ApiTokensRefused

logger = structlog.get_logger(__name__)

WINDOW_SECONDS = 60
TIMER_SECONDS = 10.0  # how late a quiet process publishes a finished minute, at most
MAX_KEYS = 1000  # per kind (addresses, prefixes) and window
PREFIX_LENGTH = 12  # "lum_" and 8 characters: the display prefix tokens are known by
REASONS = ("malformed", "unknown", "expired", "revoked")
_PRINTABLE_PREFIX = re.compile(r"[A-Za-z0-9_\-]{1,12}")


@dataclasses.dataclass
class _Count:
    count: int = 0
    malformed: int = 0
    unknown: int = 0
    expired: int = 0
    revoked: int = 0

    def add(self, reason: str) -> None:
        self.count += 1
        setattr(self, reason, getattr(self, reason) + 1)


_windows: dict[int, dict[str, _Count]] = {}
_oldest: int | None = None  # the oldest window still counted, for the cheap check
_lock = threading.Lock()
_exit_flush_registered = False


def prefix_of(raw: str) -> str:
    """What a presented token is recorded as: its first characters, if printable."""
    head = raw[:PREFIX_LENGTH]
    return head if _PRINTABLE_PREFIX.fullmatch(head) else "(unprintable)"


def refusal_record(
    *, reason: str, raw: str, ip_address: str | None, now: float | None = None
) -> None:
    """Count one refused token (``reason`` is one of ``REASONS``)."""
    global _oldest
    window = _window(now)
    flush_due(window)  # may raise SynchronousOnlyOperation: before anything is counted
    address = f"address:{ip_address or 'unknown'}"
    prefix = f"prefix:{prefix_of(raw)}"
    _register_exit_flush()
    with _lock:
        counts = _windows.setdefault(window, {})
        if _oldest is None or window < _oldest:
            _oldest = window
        for key, overflow in ((address, "address:*"), (prefix, "prefix:*")):
            entry = counts.get(key)
            if entry is None:
                kind = key.partition(":")[0]
                if sum(1 for k in counts if k.startswith(kind)) >= MAX_KEYS:
                    key = overflow
                entry = counts.setdefault(key, _Count())
            entry.add(reason)


def flush_due(window: int | None = None) -> int:
    """Publish the counts of every finished minute; return how many events that made.

    Almost always a comparison and nothing else. It publishes only outside a
    transaction, so that no rollback of the caller's can take the events with it.
    """
    current = _window(None) if window is None else window
    oldest = _oldest
    if oldest is None or oldest >= current or connection.in_atomic_block:
        return 0
    refuse_on_event_loop("Publishing refused-token counts")
    return _publish(_take(lambda start: start < current))


def flush_all() -> int:
    """Publish everything counted so far, the current minute included (tests, exit)."""
    return _publish(_take(lambda start: True))


def refusals_clear() -> None:
    """Forget every count without publishing (tests)."""
    _take(lambda start: True)


def _take(which) -> list[ApiTokensRefused]:
    global _oldest
    with _lock:
        taken = {start: _windows.pop(start) for start in list(_windows) if which(start)}
        _oldest = min(_windows, default=None)
    return [
        ApiTokensRefused(
            target=key,
            window_start=dt.datetime.fromtimestamp(start * WINDOW_SECONDS, tz=dt.UTC),
            ip_address=_address(key),
            **dataclasses.asdict(count),
        )
        for start, counts in sorted(taken.items())
        for key, count in sorted(counts.items())
    ]


def _publish(events: list[ApiTokensRefused]) -> int:
    if not events:
        return 0
    try:
        with transaction.atomic():
            publish_many(events)
    except DatabaseError:
        # Lost rather than retried: the counts are evidence, not state anything runs on.
        logger.warning("refused-token counts not recorded", events=len(events), exc_info=True)
        return 0
    return len(events)


def _window(now: float | None) -> int:
    return int((time.time() if now is None else now) // WINDOW_SECONDS)


def _address(key: str) -> str | None:
    kind, _, value = key.partition(":")
    if kind != "address":
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _register_exit_flush() -> None:
    # At the first refusal, not at import: exit handlers run last-registered first, and
    # this one must run before the embedded database (started on first use) stops.
    global _exit_flush_registered
    if not _exit_flush_registered:
        _exit_flush_registered = True
        atexit.register(_flush_at_exit)


def _flush_at_exit() -> None:
    if _oldest is None:
        return
    # The interpreter is going away: never raise.
    with contextlib.suppress(Exception):
        flush_all()


_timer: threading.Thread | None = None
_timer_stop = threading.Event()


def _tick() -> None:
    while not _timer_stop.wait(TIMER_SECONDS):
        try:
            flush_due()
        except Exception:
            logger.warning(
                "refused-token counts not published; kept for the next try", exc_info=True
            )
        finally:
            connection.close()


def refusals_timer_start() -> None:
    """Publish finished minutes even when no further token comes (a web process hook)."""
    global _timer
    if _timer is not None and _timer.is_alive():
        return
    _timer_stop.clear()
    _timer = threading.Thread(target=_tick, name="token-refusals", daemon=True)
    _timer.start()


def refusals_timer_stop() -> None:
    """Stop the timer and publish what was counted, the current minute included."""
    global _timer
    _timer_stop.set()
    if _timer is not None:
        _timer.join(timeout=TIMER_SECONDS)
        _timer = None
    if _oldest is not None:
        flush_all()
