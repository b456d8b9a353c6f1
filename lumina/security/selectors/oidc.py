"""Read queries for OAuth/OIDC login: identity providers and linked identities."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from lumina.security.models.oidc import ExternalIdentity, IdentityProvider
from lumina.security.models.users import User


def identity_provider_list(*, enabled_only: bool = False) -> QuerySet[IdentityProvider]:
    providers = IdentityProvider.objects.order_by("slug")
    return providers.filter(enabled=True) if enabled_only else providers


def identity_provider_get(*, slug: str, enabled_only: bool = False) -> IdentityProvider | None:
    return identity_provider_list(enabled_only=enabled_only).filter(slug=slug).first()


def identity_provider_by_id(*, provider_id: uuid.UUID) -> IdentityProvider | None:
    return IdentityProvider.objects.filter(pk=provider_id).first()


def external_identity_for(*, provider: IdentityProvider, subject: str) -> ExternalIdentity | None:
    return (
        ExternalIdentity.objects.select_related("user")
        .filter(provider=provider, subject=subject)
        .first()
    )


def user_by_email(*, email: str) -> User | None:
    return User.objects.filter(email__iexact=email).first()
