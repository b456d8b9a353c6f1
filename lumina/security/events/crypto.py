"""Events about envelope encryption: secrets sealed, opened or not, shredded; key rotation.

Payloads name owners and data key ids only: never a plaintext, a ciphertext or a key.
"""

from __future__ import annotations

import dataclasses
import uuid

from lumina.security.events.base import SecurityEvent


@dataclasses.dataclass(frozen=True, kw_only=True)
class SecretEncrypted(SecurityEvent):
    name = "security.SecretEncrypted"
    version = 1

    owner: str
    data_key_id: uuid.UUID
    kek_version: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class SecretDecrypted(SecurityEvent):
    name = "security.SecretDecrypted"
    version = 1
    durable = True

    owner: str
    data_key_id: uuid.UUID


@dataclasses.dataclass(frozen=True, kw_only=True)
class SecretDecryptionFailed(SecurityEvent):
    """A decrypt was allowed but the ciphertext did not open (moved, altered, shredded)."""

    name = "security.SecretDecryptionFailed"
    version = 1
    durable = True

    owner: str
    # A short code: malformed, unknown_data_key, owner_mismatch, kek_unavailable,
    # unwrap_failed or authentication_failed.
    reason: str
    data_key_id: uuid.UUID | None = None
    outcome: str = "failure"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SecretsForgotten(SecurityEvent):
    """Data keys were deleted, so their ciphertexts can never be decrypted again."""

    name = "security.SecretsForgotten"
    version = 1

    owner: str
    data_keys: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeysRotated(SecurityEvent):
    name = "security.KeysRotated"
    version = 1

    kek_version: int
    total: int
    rewrapped: int
    already_current: int
    unavailable: int
    failed: int
