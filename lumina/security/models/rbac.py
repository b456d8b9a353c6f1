"""Security's data: roles (lists of permission patterns) and their assignment to users or groups.

Object-level grants live in django-guardian's generic tables, not here.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Role(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # Built-in roles are seeded by ``roles_seed_builtin``; they cannot be renamed or deleted.
    built_in = models.BooleanField(default=False, editable=False)
    # Permission patterns such as "*", "memory.*" or "providers.read".
    permissions = ArrayField(models.CharField(max_length=200), default=list)
    # When set, the role counts only for sessions that passed MFA (never for API tokens).
    requires_mfa = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)
        constraints = [models.UniqueConstraint(Lower("name"), name="role_name_ci_unique")]

    def __str__(self) -> str:
        return self.name


class RoleAssignment(models.Model):
    """A role held by one user, or by every member of one Django auth group."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="role_assignments",
    )
    group = models.ForeignKey(
        Group, on_delete=models.CASCADE, null=True, blank=True, related_name="role_assignments"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False),
                name="role_assignment_one_principal",
            ),
            models.UniqueConstraint(
                fields=["role", "user"],
                condition=Q(user__isnull=False),
                name="role_assignment_user_unique",
            ),
            models.UniqueConstraint(
                fields=["role", "group"],
                condition=Q(group__isnull=False),
                name="role_assignment_group_unique",
            ),
        ]

    def __str__(self) -> str:
        holder = self.user if self.user_id else f"group {self.group}"
        return f"{self.role} → {holder}"
