"""Envelope encryption with AES-256-GCM: a fresh data key (DEK) per secret, wrapped by the KEK.

Wrapping choice: the DEK is wrapped with AES-256-GCM under the key-encryption key, with
the data key's id and the KEK version as associated data, rather than with AES key wrap
(RFC 3394/5649). GCM authenticates associated data, so a wrapped key copied into another
``DataKey`` row (another id) or relabelled with another KEK version fails to unwrap;
key wrap has no associated data and would accept the swap. Nonces are random 96-bit
values: each DEK seals exactly one secret, and a KEK wraps far fewer than the 2**32
keys NIST allows per key with random nonces before rotation replaces it.

Secrets are sealed with the DEK and associated data naming the data key id and the
owner (e.g. ``providers.Provider:<uuid>:api_key``), so a ciphertext moved to another
record fails to open.
"""

from __future__ import annotations

import os
import uuid

NONCE_BYTES = 12
TAG_BYTES = 16
DATA_KEY_BYTES = 32
WRAPPED_KEY_BYTES = NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES

# Domain separation: wrapping and sealing never share associated data by accident.
_WRAP_CONTEXT = b"lumina.datakey.v1"
_SEAL_CONTEXT = b"lumina.secret.v1"


def _aead():
    """``(AESGCM, InvalidTag)``: cryptography (~7 MiB) loads with the first secret sealed
    or opened, not in every process that imports the security API."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM, InvalidTag


class CryptoError(Exception):
    """Base of the engine's errors; messages never carry key material or plaintext."""


class AuthenticationFailedError(CryptoError):
    """The ciphertext, its associated data or the key does not match."""


def new_data_key() -> bytes:
    AESGCM, _ = _aead()
    return AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)


def _wrap_aad(data_key_id: uuid.UUID, kek_version: int) -> bytes:
    return b"\x00".join((_WRAP_CONTEXT, data_key_id.bytes, str(kek_version).encode()))


def secret_aad(data_key_id: uuid.UUID, owner: str) -> bytes:
    """Associated data binding a sealed secret to its data key and its owner."""
    return b"\x00".join((_SEAL_CONTEXT, data_key_id.bytes, owner.encode("utf-8")))


def wrap_data_key(
    data_key: bytes, *, kek: bytes, kek_version: int, data_key_id: uuid.UUID
) -> bytes:
    """``nonce || AES-GCM(kek, data_key)`` bound to the data key's id and the KEK version."""
    AESGCM, _ = _aead()
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, data_key, _wrap_aad(data_key_id, kek_version))


def unwrap_data_key(
    wrapped: bytes, *, kek: bytes, kek_version: int, data_key_id: uuid.UUID
) -> bytes:
    if len(wrapped) != WRAPPED_KEY_BYTES:
        raise AuthenticationFailedError("the wrapped data key has the wrong length")
    nonce, body = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
    AESGCM, InvalidTag = _aead()
    try:
        return AESGCM(kek).decrypt(nonce, body, _wrap_aad(data_key_id, kek_version))
    except InvalidTag:
        raise AuthenticationFailedError("the data key does not unwrap under this KEK") from None


def seal(plaintext: bytes, *, data_key: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt ``plaintext``; returns ``(nonce, ciphertext || tag)``."""
    AESGCM, _ = _aead()
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(data_key).encrypt(nonce, plaintext, aad)


def open_sealed(nonce: bytes, ciphertext: bytes, *, data_key: bytes, aad: bytes) -> bytes:
    AESGCM, InvalidTag = _aead()
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise AuthenticationFailedError("the ciphertext does not authenticate") from None
