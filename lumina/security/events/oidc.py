"""Events about OAuth/OIDC login and identity providers. Tokens and secrets never go in one."""

from __future__ import annotations

import dataclasses
import uuid

from lumina.security.events.base import SecurityEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class OidcLoginSucceeded(SecurityEvent):
    """A user logged in through an identity provider."""

    name = "security.OidcLoginSucceeded"
    version = 1
    durable = True

    user_id: uuid.UUID
    provider: str
    subject: str
    # How the account was found: "subject", "verified_email" (first link) or "signup".
    matched_by: str
    mfa_required: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class OidcLoginFailed(SecurityEvent):
    """A login through an identity provider was refused."""

    name = "security.OidcLoginFailed"
    version = 1
    durable = True

    provider: str
    # A short machine-readable reason, e.g. "state_mismatch", "invalid_id_token".
    reason: str
    subject: str | None = None
    outcome: str = "failure"


@dataclasses.dataclass(frozen=True, kw_only=True)
class IdentityProviderCreated(SecurityEvent):
    name = "security.IdentityProviderCreated"
    version = 1

    provider_id: uuid.UUID
    slug: str
    issuer: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class IdentityProviderUpdated(SecurityEvent):
    name = "security.IdentityProviderUpdated"
    version = 1

    provider_id: uuid.UUID
    slug: str
    # Names of the changed fields; "client_secret" when the secret was replaced.
    changed: tuple[str, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class IdentityProviderDeleted(SecurityEvent):
    name = "security.IdentityProviderDeleted"
    version = 1

    provider_id: uuid.UUID
    slug: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExternalIdentityUnlinked(SecurityEvent):
    """Support removed the link between a provider's identity and a user."""

    name = "security.ExternalIdentityUnlinked"
    version = 1

    user_id: uuid.UUID
    provider: str
    subject: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExternalIdentityLinked(SecurityEvent):
    """A logged-in user confirmed the link to an identity of a provider (pending link)."""

    name = "security.ExternalIdentityLinked"
    version = 1

    user_id: uuid.UUID
    provider: str
    subject: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExternalIdentityLinkRefused(SecurityEvent):
    """A pending link was not confirmed: wrong password, another email, a link already made."""

    name = "security.ExternalIdentityLinkRefused"
    version = 1
    durable = True

    user_id: uuid.UUID
    provider: str
    subject: str
    # "invalid_password", "email_mismatch", "provider_does_not_link" or "already_linked".
    reason: str
    outcome: str = "denied"
