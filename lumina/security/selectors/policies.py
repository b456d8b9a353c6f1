"""Reads for policies: the policies, their versions, and the texts ``authorize`` puts in force."""

from __future__ import annotations

import dataclasses
import uuid

from django.db.models import F, OuterRef, QuerySet, Subquery

from lumina.kernel.errors import NotFoundError
from lumina.security.models.policies import Policy, PolicyVersion


@dataclasses.dataclass(frozen=True)
class PolicyInForce:
    policy_id: uuid.UUID
    name: str
    version: int
    cedar: str

    @property
    def rule(self) -> str:
        """How a decision names this policy: ``policy:<id>@v<version>``."""
        return f"policy:{self.policy_id}@v{self.version}"


def _with_text() -> QuerySet[Policy]:
    """Policies annotated with ``cedar``, the text of their current version."""
    current = PolicyVersion.objects.filter(policy=OuterRef("pk"), version=OuterRef("version"))
    return Policy.objects.annotate(cedar=Subquery(current.values("cedar")[:1]))


def policy_list(*, enabled: bool | None = None) -> QuerySet[Policy]:
    rows = _with_text().order_by("name")
    return rows if enabled is None else rows.filter(enabled=enabled)


def policy_get(*, policy_id: uuid.UUID) -> Policy:
    policy = _with_text().filter(pk=policy_id).first()
    if policy is None:
        raise NotFoundError(f"No policy {policy_id}.")
    return policy


def policy_current_text(*, policy: Policy) -> str:
    return (
        PolicyVersion.objects.filter(policy=policy, version=policy.version)
        .values_list("cedar", flat=True)
        .get()
    )


def policy_version_list(*, policy_id: uuid.UUID) -> QuerySet[PolicyVersion]:
    policy_get(policy_id=policy_id)
    return PolicyVersion.objects.filter(policy_id=policy_id).order_by("-version")


def policy_version_get(*, policy_id: uuid.UUID, version: int) -> PolicyVersion:
    row = PolicyVersion.objects.filter(policy_id=policy_id, version=version).first()
    if row is None:
        raise NotFoundError(f"Policy {policy_id} has no version {version}.")
    return row


def policies_in_force() -> list[PolicyInForce]:
    """The current version of every enabled policy (one query)."""
    rows = (
        PolicyVersion.objects.filter(policy__enabled=True, version=F("policy__version"))
        .order_by("policy__name")
        .values_list("policy_id", "policy__name", "version", "cedar")
    )
    return [PolicyInForce(*row) for row in rows]
