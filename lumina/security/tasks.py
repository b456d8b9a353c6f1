"""Celery tasks of the security context: the periodic export of the audit chain's head."""

from __future__ import annotations

from celery import shared_task

from lumina.security.services.audit_head import audit_head_export


@shared_task(name="lumina.security.tasks.export_audit_head", ignore_result=True)
def export_audit_head() -> int:
    return audit_head_export().sequence
