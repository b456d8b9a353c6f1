"""Security's data, one module per area; each is imported here so Django registers it."""

from lumina.security.models.users import User, UserManager

__all__ = ["User", "UserManager"]
