"""Security's data, one module per area; each is imported here so Django registers it."""

from lumina.security.models.audit import AuditEntry  # noqa: F401
from lumina.security.models.crypto import DataKey  # noqa: F401
from lumina.security.models.mfa import BackupCode, BackupCodesDevice, TotpDevice  # noqa: F401
from lumina.security.models.oidc import ExternalIdentity, IdentityProvider  # noqa: F401
from lumina.security.models.policies import Policy, PolicyVersion  # noqa: F401
from lumina.security.models.rbac import Role, RoleAssignment  # noqa: F401
from lumina.security.models.tokens import ApiToken
from lumina.security.models.users import User, UserManager

__all__ = ["ApiToken", "User", "UserManager"]
