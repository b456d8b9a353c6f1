"""Public interface: the identity providers users may log in with."""

from __future__ import annotations

import dataclasses
import uuid

from django.urls import reverse

from lumina.security.selectors.oidc import identity_provider_list

__all__ = ["IdentityProviderDTO", "identity_providers"]


@dataclasses.dataclass(frozen=True)
class IdentityProviderDTO:
    id: uuid.UUID
    slug: str
    display_name: str
    issuer: str
    enabled: bool
    # Path that starts the login: GET it in the browser.
    login_path: str


def identity_providers(*, enabled_only: bool = True) -> list[IdentityProviderDTO]:
    """Identity providers (only enabled ones by default), for login pages."""
    return [
        IdentityProviderDTO(
            id=p.id,
            slug=p.slug,
            display_name=p.display_name,
            issuer=p.issuer,
            enabled=p.enabled,
            login_path=reverse("v1:oidc-login", kwargs={"slug": p.slug}),
        )
        for p in identity_provider_list(enabled_only=enabled_only)
    ]
