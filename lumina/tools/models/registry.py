"""The tool registry: tools, their immutable versions, and the HTTP tools' allow-list."""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from lumina.tools.types import Limits, ToolKind

__all__ = ["HttpAllowEntry", "Tool", "ToolVersion"]

# OpenAI's and Anthropic's function names: letters, digits, '_' and '-', at most 64.
NAME_VALIDATOR = RegexValidator(
    r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
    "Use 1-64 letters, digits, '_' or '-', starting with a letter.",
    code="invalid_name",
)
KIND_CHOICES = [(kind.value, kind.value) for kind in ToolKind]
HTTP_METHODS = [(method, method) for method in ("GET", "POST", "PUT", "PATCH", "DELETE")]


class Tool(models.Model):
    """A named tool; what it does is its newest version (``version``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True, validators=[NAME_VALIDATOR])
    kind = models.CharField(max_length=16, choices=KIND_CHOICES)
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    # The user who registered it (security owns users: an id, no foreign key).
    owner_id = models.UUIDField(null=True, blank=True, editable=False)
    mcp_server = models.ForeignKey(
        "tools.McpServer", null=True, blank=True, on_delete=models.CASCADE, related_name="tools"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class ToolVersion(models.Model):
    """One version of a tool: contracts, implementation and limits. Never changed once saved."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tool = models.ForeignKey(Tool, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    description = models.TextField(max_length=4000, blank=True, default="")
    input_schema = models.JSONField(default=dict)
    output_schema = models.JSONField(null=True, blank=True)
    # python
    source = models.TextField(blank=True, default="")
    # http
    http_url = models.CharField(max_length=2000, blank=True, default="")
    http_method = models.CharField(max_length=8, choices=HTTP_METHODS, default="POST")
    # builtin
    builtin_name = models.CharField(max_length=100, blank=True, default="")
    # mcp: the tool's name on its server
    mcp_tool_name = models.CharField(max_length=200, blank=True, default="")
    timeout_seconds = models.FloatField(
        default=Limits.timeout_seconds,
        validators=[MinValueValidator(0.01), MaxValueValidator(3600)],
    )
    memory_mb = models.PositiveIntegerField(
        default=Limits.memory_mb, validators=[MinValueValidator(16), MaxValueValidator(65536)]
    )
    output_bytes = models.PositiveIntegerField(
        default=Limits.output_bytes,
        validators=[MinValueValidator(1024), MaxValueValidator(64 * 1024 * 1024)],
    )
    network = models.BooleanField(default=False)
    created_by = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("tool", "-number")
        constraints = [
            models.UniqueConstraint(fields=("tool", "number"), name="tools_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.tool.name} v{self.number}"

    @property
    def limits(self) -> Limits:
        return Limits(
            timeout_seconds=self.timeout_seconds,
            memory_mb=self.memory_mb,
            output_bytes=self.output_bytes,
            network=self.network,
        )


class HttpAllowEntry(models.Model):
    """A URL prefix ``http`` tools may call (admin-managed).

    Being listed here is necessary, not sufficient: the kernel's outbound guard still
    refuses loopback, private and metadata addresses unless the operator allows them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    prefix = models.CharField(
        max_length=2000, unique=True, help_text="e.g. https://api.example.com/v1/"
    )
    description = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("prefix",)
        verbose_name = "HTTP tool allow-list entry"
        verbose_name_plural = "HTTP tool allow-list"

    def __str__(self) -> str:
        return self.prefix
