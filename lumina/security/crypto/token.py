"""The ciphertext string callers store: ``lsec1.`` + base64url(key id || nonce || sealed).

Opaque to callers and versioned by its prefix, so a later format can coexist. The
data key id (16 bytes) says which ``DataKey`` row unwraps it; the nonce is 12 bytes;
the rest is the AES-GCM ciphertext with its 16-byte tag.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import uuid

from lumina.security.crypto.envelope import NONCE_BYTES, TAG_BYTES, CryptoError

PREFIX = "lsec1."
_ID_BYTES = 16
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
MIN_PAYLOAD_BYTES = _ID_BYTES + NONCE_BYTES + TAG_BYTES


class MalformedCiphertextError(CryptoError):
    """The string is not a ciphertext this engine produced."""


@dataclasses.dataclass(frozen=True)
class SealedSecret:
    data_key_id: uuid.UUID
    nonce: bytes
    ciphertext: bytes


def max_length(plaintext_bytes: int) -> int:
    """The longest ciphertext string a plaintext of ``plaintext_bytes`` bytes produces."""
    raw = MIN_PAYLOAD_BYTES + plaintext_bytes
    return len(PREFIX) + -(-raw * 4 // 3)


def encode(sealed: SealedSecret) -> str:
    raw = sealed.data_key_id.bytes + sealed.nonce + sealed.ciphertext
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(value: str) -> SealedSecret:
    if not value.startswith(PREFIX):
        raise MalformedCiphertextError("unknown ciphertext format")
    body = value[len(PREFIX) :]
    if not _BASE64URL.match(body):
        raise MalformedCiphertextError("the ciphertext is not base64url")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise MalformedCiphertextError("the ciphertext is not base64url") from None
    if len(raw) < MIN_PAYLOAD_BYTES:
        raise MalformedCiphertextError("the ciphertext is too short")
    return SealedSecret(
        data_key_id=uuid.UUID(bytes=raw[:_ID_BYTES]),
        nonce=raw[_ID_BYTES : _ID_BYTES + NONCE_BYTES],
        ciphertext=raw[_ID_BYTES + NONCE_BYTES :],
    )
