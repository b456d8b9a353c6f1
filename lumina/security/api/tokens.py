"""Public interface: API tokens.

``authenticate_token`` authenticates a request (REST, the /v1 gateway, websockets); the
others let a person's own pages list, mint and revoke their tokens, with the rules the
REST API applies (``services.tokens``: a token minting reaches no further and lives no
longer than itself; revoking takes the tokens minted with it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from lumina.kernel.errors import NotFoundError
from lumina.security.selectors.tokens import ApiTokenDTO, TokenInfo, token_get, token_list
from lumina.security.services.tokens import (
    DEFAULT_SCOPES,
    InvalidTokenError,
    IssuedToken,
    token_actor,
    token_cache_invalidate,
    token_create,
    token_revoke,
    tokens_manage_require,
)
from lumina.security.types import Actor

__all__ = [
    "ApiTokenDTO",
    "InvalidTokenError",
    "IssuedToken",
    "TokenInfo",
    "authenticate_token",
    "token_cache_invalidate",
    "token_mint_own",
    "token_revoke_own",
    "tokens_own",
]


def authenticate_token(raw: str, *, ip_address: str | None = None) -> Actor:
    """The actor behind a presented ``lum_…`` token (the part after ``Bearer``).

    Raises ``InvalidTokenError`` (an ``ApplicationError`` with status 401; its ``code`` is
    ``malformed_token``, ``invalid_token``, ``token_expired`` or ``token_revoked``) when the
    token is malformed, unknown, expired, revoked or belongs to an inactive user.
    """
    return token_actor(raw=raw, ip_address=ip_address)


def tokens_own(*, actor: Actor) -> list[ApiTokenDTO]:
    """The actor's own tokens, newest first (never a secret)."""
    tokens_manage_require(actor, actor.user_id)
    return token_list(user_id=actor.user_id)


def token_mint_own(
    *,
    actor: Actor,
    name: str = "",
    scopes: Sequence[str] = DEFAULT_SCOPES,
    expires_at: dt.datetime | None = None,
) -> IssuedToken:
    """A new token of the actor's own; ``secret`` is its only copy. Bad values raise an
    ``ApplicationError`` naming the field (``name``, ``scopes``, ``expires_at``)."""
    return token_create(
        user_id=actor.user_id, actor=actor, name=name, scopes=scopes, expires_at=expires_at
    )


def token_revoke_own(*, actor: Actor, token_id: uuid.UUID) -> ApiTokenDTO:
    """Revoke one of the actor's tokens (and those minted with it); another person's is
    answered as missing (``NotFoundError``), as the REST API does."""
    token = token_get(token_id=token_id)
    if token is None or token.user_id != actor.user_id:
        raise NotFoundError(f"No API token {token_id}.")
    return token_revoke(token_id=token_id, actor=actor)
