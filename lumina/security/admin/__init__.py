"""Admin console pages of the security context, one module per area."""

from lumina.security.admin import audit, crypto, mfa, oidc, policies, rbac, tokens, users  # noqa: F401
