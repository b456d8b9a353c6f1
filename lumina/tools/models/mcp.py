"""MCP servers registered as tool sources; their tools are ``Tool`` rows of kind ``mcp``."""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from lumina.tools.models.registry import NAME_VALIDATOR

__all__ = ["McpServer"]


class McpServer(models.Model):
    class Transport(models.TextChoices):
        STDIO = "stdio"
        HTTP = "http"  # streamable HTTP

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True, validators=[NAME_VALIDATOR])
    transport = models.CharField(max_length=8, choices=Transport.choices)
    # stdio: the program and its arguments
    command = models.JSONField(default=list, blank=True)
    # http: the endpoint, checked by the outbound guard when saved and when connecting
    url = models.CharField(max_length=2000, blank=True, default="")
    enabled = models.BooleanField(default=True)
    timeout_seconds = models.FloatField(
        default=30.0, validators=[MinValueValidator(0.1), MaxValueValidator(3600)]
    )
    # Sealed with security.api.encrypt_secret (owner ``secret_owner``): a JSON object of
    # the stdio server's environment variables, or of the HTTP server's request headers.
    env_secret = models.TextField(blank=True, default="", editable=False)
    headers_secret = models.TextField(blank=True, default="", editable=False)
    last_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, default="", editable=False)
    owner_id = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)
        verbose_name = "MCP server"

    def __str__(self) -> str:
        return self.name

    @property
    def secret_owner(self) -> str:
        return f"tools.mcpserver:{self.id}"
