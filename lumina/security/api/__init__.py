"""The security context's public interface: the only module other contexts may import.

Everything here takes and returns plain values or the frozen dataclasses of
``lumina.security.types``; never models or querysets.
"""

from lumina.security.api.users import EnsuredAdmin, UserDTO, ensure_admin
from lumina.security.services.authorization import authorize
from lumina.security.types import Actor, Decision, Resource

__all__ = [
    "Actor",
    "Decision",
    "EnsuredAdmin",
    "Resource",
    "UserDTO",
    "authorize",
    "ensure_admin",
]
