"""The security context's public interface: the only module other contexts may import.

Everything here takes and returns plain values or the frozen dataclasses of
``lumina.security.types``; never models or querysets.
"""

from lumina.security.api.actors import (
    access_generation,
    actor_of,
    actor_of_scope,
    actor_of_user_id,
    client_ip,
)
from lumina.security.api.admin import (
    AdminPermissions,
    PermissionAdmin,
    PermissionInline,
    ReadOnlyAdmin,
    add_errors,
    admin_may,
)
from lumina.security.api.crypto import (
    DecryptionError,
    decrypt_secret,
    encrypt_secret,
    forget_secret,
)
from lumina.security.api.grants import (
    ObjectGrant,
    object_authorize,
    object_grants,
    object_grants_check,
    object_grants_clear,
    object_grants_set,
    object_holds,
    object_ids_granted,
    object_require,
)
from lumina.security.api.mfa import MfaDevice, MfaStatus, mfa_status
from lumina.security.api.oidc import IdentityProviderDTO, identity_providers
from lumina.security.api.sign_in import (
    AccountLockedError,
    sign_in_address_wait,
    sign_in_code,
    sign_in_password,
)
from lumina.security.api.tokens import (
    ApiTokenDTO,
    InvalidTokenError,
    IssuedToken,
    TokenInfo,
    authenticate_token,
    token_cache_invalidate,
    token_mint_own,
    token_revoke_own,
    tokens_own,
)
from lumina.security.api.users import EnsuredAdmin, UserDTO, ensure_admin, user_find
from lumina.security.services.authorization import authorize, require
from lumina.security.types import Actor, Decision, Resource

__all__ = [
    "AccountLockedError",
    "Actor",
    "AdminPermissions",
    "ApiTokenDTO",
    "Decision",
    "DecryptionError",
    "EnsuredAdmin",
    "IdentityProviderDTO",
    "InvalidTokenError",
    "IssuedToken",
    "MfaDevice",
    "MfaStatus",
    "ObjectGrant",
    "PermissionAdmin",
    "PermissionInline",
    "ReadOnlyAdmin",
    "Resource",
    "TokenInfo",
    "UserDTO",
    "access_generation",
    "actor_of",
    "actor_of_scope",
    "actor_of_user_id",
    "add_errors",
    "admin_may",
    "authenticate_token",
    "authorize",
    "client_ip",
    "decrypt_secret",
    "encrypt_secret",
    "ensure_admin",
    "forget_secret",
    "identity_providers",
    "mfa_status",
    "object_authorize",
    "object_grants",
    "object_grants_check",
    "object_grants_clear",
    "object_grants_set",
    "object_holds",
    "object_ids_granted",
    "object_require",
    "require",
    "sign_in_address_wait",
    "sign_in_code",
    "sign_in_password",
    "token_cache_invalidate",
    "token_mint_own",
    "token_revoke_own",
    "tokens_own",
    "user_find",
]
