"""Celery tasks of the event bus: deliver a batch of events; relay stranded and due ones."""

from __future__ import annotations

import uuid

from celery import shared_task

from lumina.kernel import bus


@shared_task(name="lumina.kernel.tasks.deliver_events", ignore_result=True)
def deliver_events(event_ids: list[str]) -> int:
    return len(bus.deliver_many([uuid.UUID(i) for i in event_ids]))


@shared_task(name="lumina.kernel.tasks.relay_outbox", ignore_result=True)
def relay_outbox() -> int:
    return bus.relay()
