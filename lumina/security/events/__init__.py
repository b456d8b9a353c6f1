"""Events the security context publishes; importing this package registers them all."""

from lumina.security.events.base import SecurityEvent
from lumina.security.events.users import UserCreated

__all__ = ["SecurityEvent", "UserCreated"]
