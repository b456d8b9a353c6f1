"""Celery tasks of the memory context: the periodic expiry of memories past their TTL."""

from __future__ import annotations

from celery import shared_task

from lumina.memory.services.expiry import records_expire_due


@shared_task(name="lumina.memory.tasks.expire_memories", ignore_result=True)
def expire_memories() -> int:
    return records_expire_due()
