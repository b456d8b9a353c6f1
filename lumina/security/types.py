"""Value types shared by every security area and returned through ``security.api``.

Plain frozen dataclasses: they cross context boundaries where models never do.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who is asking: a user (by session or API token) or a context acting as the system."""

    user_id: uuid.UUID | None
    email: str | None = None
    is_superuser: bool = False
    is_staff: bool = False
    is_active: bool = True
    token_id: uuid.UUID | None = None
    # Token scopes; None means a session, which carries no scope limit.
    scopes: frozenset[str] | None = None
    mfa_verified: bool = False
    # For system actors: the context acting, e.g. "providers".
    context: str | None = None
    ip_address: str | None = None

    @classmethod
    def system(cls, context: str) -> Actor:
        return cls(user_id=None, context=context)

    @property
    def is_system(self) -> bool:
        return self.user_id is None and self.context is not None

    @property
    def principal(self) -> str:
        if self.is_system:
            return f"system:{self.context}"
        return f"user:{self.user_id}" if self.user_id else "anonymous"


@dataclasses.dataclass(frozen=True)
class Resource:
    """What an action is about: a type such as ``memory.space`` and the object's id."""

    type: str
    id: str | None = None
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Decision:
    """An authorisation answer that explains itself."""

    allowed: bool
    action: str
    reason: str
    # The roles, grants or policy ids that decided it.
    rules: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed
