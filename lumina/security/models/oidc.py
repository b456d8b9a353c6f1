"""Security's data for OAuth/OIDC login: identity providers and the identities they vouch for."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

DEFAULT_SCOPES = "openid email profile"


class IdentityProvider(models.Model):
    """An OpenID Provider users may log in with, found through its discovery document."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=50, unique=True)
    display_name = models.CharField(max_length=100)
    issuer = models.URLField(max_length=500, help_text="Exactly as the provider states it.")
    client_id = models.CharField(max_length=255)
    # Ciphertext from encrypt_secret (owner "security.IdentityProvider:<id>:client_secret").
    client_secret_encrypted = models.TextField(editable=False)
    scopes = models.CharField(max_length=500, default=DEFAULT_SCOPES)
    enabled = models.BooleanField(default=True)
    allow_signup = models.BooleanField(
        default=False, help_text="Create an account for a new user who logs in here."
    )
    link_by_verified_email = models.BooleanField(
        default=False,
        help_text="On a first login, link to the account whose email the provider has verified.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("slug",)

    def __str__(self) -> str:
        return self.display_name

    @property
    def secret_owner(self) -> str:
        return f"security.IdentityProvider:{self.id}:client_secret"


class ExternalIdentity(models.Model):
    """A user as known to one identity provider (its ``sub``), linked to a Lumina user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.ForeignKey(
        IdentityProvider, on_delete=models.CASCADE, related_name="identities"
    )
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    email_at_link = models.EmailField(max_length=254, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "external identities"
        constraints = [
            models.UniqueConstraint(
                fields=("provider", "subject"), name="external_identity_unique"
            ),
            # One identity per provider and user: a second one would be an ambiguous link.
            models.UniqueConstraint(
                fields=("provider", "user"), name="external_identity_one_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider.slug}:{self.subject}"
