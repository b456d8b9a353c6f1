"""Celery tasks of the event bus: deliver one event; relay stranded and due events."""

from __future__ import annotations

import uuid

from celery import shared_task

from lumina.kernel import bus


@shared_task(name="lumina.kernel.tasks.deliver_event", ignore_result=True)
def deliver_event(event_id: str) -> None:
    bus.deliver(uuid.UUID(event_id))


@shared_task(name="lumina.kernel.tasks.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    return bus.relay()
