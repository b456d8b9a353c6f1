"""Reads of API tokens, and the value types that describe them outside the models."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from django.utils import timezone

from lumina.security.models.tokens import ApiToken


@dataclasses.dataclass(frozen=True)
class TokenInfo:
    """What a request authenticated by an API token knows about that token."""

    id: uuid.UUID
    user_id: uuid.UUID
    scopes: tuple[str, ...]
    expires_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class ApiTokenDTO:
    """An API token as people see it: never its secret or the secret's hash."""

    id: uuid.UUID
    user_id: uuid.UUID
    user_email: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"


def token_dto(token: ApiToken) -> ApiTokenDTO:
    return ApiTokenDTO(
        id=token.id,
        user_id=token.user_id,
        user_email=token.user.email,
        name=token.name,
        prefix=token.prefix,
        scopes=tuple(token.scopes),
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


def token_list(*, user_id: uuid.UUID) -> list[ApiTokenDTO]:
    rows = ApiToken.objects.filter(user_id=user_id).select_related("user").order_by("-created_at")
    return [token_dto(row) for row in rows]


def token_get(*, token_id: uuid.UUID) -> ApiTokenDTO | None:
    token = ApiToken.objects.select_related("user").filter(pk=token_id).first()
    return token_dto(token) if token is not None else None


def token_find(*, id_or_prefix: str) -> list[ApiTokenDTO]:
    """Tokens whose id or display prefix is ``id_or_prefix`` (for the CLI)."""
    try:
        rows = ApiToken.objects.filter(pk=uuid.UUID(id_or_prefix))
    except ValueError:
        rows = ApiToken.objects.filter(prefix=id_or_prefix)
    return [token_dto(row) for row in rows.select_related("user")]
