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

    @classmethod
    def for_user(
        cls,
        user: Any,
        *,
        token: Any = None,
        ip_address: str | None = None,
        mfa_verified: bool | None = None,
        context: str | None = None,
    ) -> Actor:
        """The actor for a user: the one way every entry point (REST, admin, websockets,
        the gateway, services) builds it.

        ``user`` is a user model instance; ``token`` the ``TokenInfo`` (``id``,
        ``scopes``) it authenticated with, if any. A token carries no second factor;
        otherwise ``mfa_verified`` is django-otp's ``user.is_verified()`` unless given.
        """
        if token is not None:
            verified = False
        elif mfa_verified is not None:
            verified = mfa_verified
        else:
            is_verified = getattr(user, "is_verified", None)
            verified = bool(is_verified()) if callable(is_verified) else False
        return cls(
            user_id=user.pk,
            email=user.email,
            is_superuser=user.is_superuser,
            is_staff=user.is_staff,
            is_active=user.is_active,
            token_id=token.id if token is not None else None,
            scopes=frozenset(token.scopes) if token is not None else None,
            mfa_verified=verified,
            context=context,
            ip_address=ip_address,
        )

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
