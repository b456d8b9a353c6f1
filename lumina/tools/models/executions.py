"""Executions: every run of a tool, whoever asked and however it ended."""

from __future__ import annotations

import uuid

from django.db import models

from lumina.tools.types import ExecutionStatus

__all__ = ["Execution"]

STATUS_CHOICES = [(status.value, status.value) for status in ExecutionStatus]


class Execution(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Kept when the tool is removed: the record outlives it, named by ``tool_name``.
    tool = models.ForeignKey(
        "tools.Tool", null=True, blank=True, on_delete=models.SET_NULL, related_name="executions"
    )
    tool_name = models.CharField(max_length=64)
    tool_version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, db_index=True)
    arguments = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    stdout = models.TextField(blank=True, default="")
    stderr = models.TextField(blank=True, default="")
    duration_ms = models.FloatField(null=True, blank=True)
    resource_use = models.JSONField(default=dict, blank=True)
    # Who: a user id (security owns users), the token used, or a system context.
    actor_id = models.UUIDField(null=True, blank=True, db_index=True)
    token_id = models.UUIDField(null=True, blank=True)
    actor_context = models.CharField(max_length=64, blank=True, default="")
    # The token's scopes, so a run accepted with 202 acts later with no more than them.
    token_scopes = models.JSONField(null=True, blank=True)
    # Which model call asked for it (the upstream tool-call id) and which loop run.
    model_call_id = models.CharField(max_length=200, blank=True, default="")
    run_id = models.UUIDField(null=True, blank=True, db_index=True)
    asynchronous = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [models.Index(fields=("tool_name", "-created_at"), name="tools_exec_tool_idx")]

    def __str__(self) -> str:
        return f"{self.tool_name} {self.status} {self.id}"
