"""Public interface: authenticate a request by API token (REST, the /v1 gateway, websockets)."""

from __future__ import annotations

from lumina.security.selectors.tokens import TokenInfo
from lumina.security.services.tokens import (
    InvalidTokenError,
    token_actor,
    token_cache_invalidate,
)
from lumina.security.types import Actor

__all__ = ["InvalidTokenError", "TokenInfo", "authenticate_token", "token_cache_invalidate"]


def authenticate_token(raw: str, *, ip_address: str | None = None) -> Actor:
    """The actor behind a presented ``lum_…`` token (the part after ``Bearer``).

    Raises ``InvalidTokenError`` (an ``ApplicationError`` with status 401; its ``code`` is
    ``malformed_token``, ``invalid_token``, ``token_expired`` or ``token_revoked``) when the
    token is malformed, unknown, expired, revoked or belongs to an inactive user.
    """
    return token_actor(raw=raw, ip_address=ip_address)
