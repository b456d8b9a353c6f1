"""Public interface: envelope encryption of secrets that other contexts store.

A context keeps the returned ciphertext string in its own record, labelled with an
owner such as ``providers.Provider:<uuid>:api_key``; the ciphertext opens only for
that owner. Forgetting the owner's secret when the record goes shreds it for good.
"""

from __future__ import annotations

from lumina.security.services import crypto as services
from lumina.security.services.crypto import DecryptionError
from lumina.security.types import Actor

__all__ = ["DecryptionError", "decrypt_secret", "encrypt_secret", "forget_secret"]


def encrypt_secret(plaintext: str, *, owner: str) -> str:
    """Seal ``plaintext`` (at most 64 KiB of UTF-8) for ``owner``; store what it returns."""
    return services.secret_encrypt(plaintext=plaintext, owner=owner)


def decrypt_secret(ciphertext: str, *, owner: str, actor: Actor) -> str:
    """The plaintext, if ``actor`` may decrypt ``owner``'s secrets.

    Raises ``PermissionDeniedError`` when refused and ``DecryptionError`` when the
    ciphertext was made for another owner, altered, or its key shredded or unavailable.
    """
    return services.secret_decrypt(ciphertext=ciphertext, owner=owner, actor=actor)


def forget_secret(owner: str, *, ciphertext: str | None = None) -> int:
    """Shred ``owner``'s secrets (only the one behind ``ciphertext`` if given); return how many."""
    return services.secret_forget(owner=owner, ciphertext=ciphertext)
