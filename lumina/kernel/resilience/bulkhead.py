"""Bulkheads: at most N calls in flight per key, per event loop (so per ASGI process).

A call waits up to ``wait`` seconds for a slot, then is refused with ``BulkheadFullError``
so its caller moves on (another provider, another server) instead of queueing behind a
slow one. The limit comes with each call, so a changed setting (a provider's
``max_concurrency``) applies at once: the key gets a fresh compartment, and calls holding
the old one finish there.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Hashable

from django.conf import settings

DEFAULT_WAIT = 0.5


class BulkheadFullError(Exception):
    """Every slot of the key's compartment stayed taken for the whole wait."""

    def __init__(self, key: Hashable, limit: int, wait: float) -> None:
        super().__init__(f"{limit} calls in flight for {key} and no slot freed within {wait:g}s")
        self.key = key
        self.limit = limit
        self.wait = wait


class _Compartment:
    __slots__ = ("active", "limit", "semaphore")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.semaphore = asyncio.Semaphore(limit)
        self.active = 0


class Slot:
    """A slot in use; ``release`` (idempotent) gives it back."""

    __slots__ = ("_compartment",)

    def __init__(self, compartment: _Compartment) -> None:
        self._compartment: _Compartment | None = compartment

    def release(self) -> None:
        compartment, self._compartment = self._compartment, None
        if compartment is not None:
            compartment.active -= 1
            compartment.semaphore.release()

    async def __aenter__(self) -> Slot:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Bulkhead:
    """Concurrency limits per key, per event loop."""

    def __init__(self, *, wait: float | None = None) -> None:
        if wait is None:
            wait = getattr(settings, "LUMINA_BULKHEAD_WAIT", None)
        self.wait = float(DEFAULT_WAIT if wait is None else wait)
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, _Compartment]
        ] = weakref.WeakKeyDictionary()

    def _compartment(self, key: Hashable, limit: int) -> _Compartment:
        loop = asyncio.get_running_loop()
        compartments = self._loops.get(loop)
        if compartments is None:
            compartments = self._loops[loop] = {}
        compartment = compartments.get(key)
        limit = max(1, limit)
        if compartment is None or compartment.limit != limit:
            compartment = compartments[key] = _Compartment(limit)
        return compartment

    async def acquire(self, key: Hashable, limit: int) -> Slot:
        """Take a slot, waiting up to ``wait`` seconds; ``BulkheadFullError`` if none."""
        compartment = self._compartment(key, limit)
        semaphore = compartment.semaphore
        if semaphore.locked():
            if self.wait <= 0:
                raise BulkheadFullError(key, compartment.limit, self.wait)
            try:
                async with asyncio.timeout(self.wait):
                    await semaphore.acquire()
            except TimeoutError:
                raise BulkheadFullError(key, compartment.limit, self.wait) from None
        else:
            await semaphore.acquire()  # a free slot: returns without suspending
        compartment.active += 1
        return Slot(compartment)

    def slot(self, key: Hashable, limit: int) -> _SlotContext:
        """``async with bulkhead.slot(key, limit):`` around one call."""
        return _SlotContext(self, key, limit)

    def in_flight(self, key: Hashable) -> int:
        compartments = self._loops.get(asyncio.get_running_loop(), {})
        compartment = compartments.get(key)
        return compartment.active if compartment is not None else 0


class _SlotContext:
    __slots__ = ("_bulkhead", "_key", "_limit", "_slot")

    def __init__(self, bulkhead: Bulkhead, key: Hashable, limit: int) -> None:
        self._bulkhead, self._key, self._limit = bulkhead, key, limit
        self._slot: Slot | None = None

    async def __aenter__(self) -> Slot:
        self._slot = await self._bulkhead.acquire(self._key, self._limit)
        return self._slot

    async def __aexit__(self, *exc: object) -> None:
        if self._slot is not None:
            self._slot.release()
