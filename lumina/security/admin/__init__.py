"""Admin console pages of the security context, one module per area."""

from lumina.security.admin import users  # noqa: F401
