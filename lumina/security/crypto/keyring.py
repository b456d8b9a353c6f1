"""The key-encryption keyring: versioned AES-256 keys from ``settings.LUMINA_MASTER_KEYS``.

The setting reads ``"1:<base64 of 32 bytes>,2:<…>"``; the highest version is the
current key-encryption key (KEK), the others are kept only to unwrap data keys that
have not been rotated yet. Errors name versions, never key material.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import types
from collections.abc import Mapping

from django.conf import settings

KEY_BYTES = 32


class KeyringError(ValueError):
    """The configured keyring is missing or malformed."""


class UnknownKeyVersionError(LookupError):
    """No key of this version is in the keyring (removed, or never configured)."""

    def __init__(self, version: int) -> None:
        super().__init__(f"key-encryption key version {version} is not in the keyring")
        self.version = version


@dataclasses.dataclass(frozen=True, eq=False)
class Keyring:
    """Key-encryption keys by version. Never printed: the repr shows versions only."""

    keys: Mapping[int, bytes] = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringError("the keyring holds no key")
        object.__setattr__(self, "keys", types.MappingProxyType(dict(self.keys)))

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(sorted(self.keys))

    @property
    def current_version(self) -> int:
        return max(self.keys)

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current_version]

    def key(self, version: int) -> bytes:
        try:
            return self.keys[version]
        except KeyError:
            raise UnknownKeyVersionError(version) from None

    def __contains__(self, version: object) -> bool:
        return version in self.keys

    def __repr__(self) -> str:
        return f"Keyring(versions={self.versions}, current={self.current_version})"


def parse_master_keys(value: str) -> dict[int, bytes]:
    """``"1:<base64>,2:<base64>"`` to ``{1: key, 2: key}``; each key is 32 bytes (AES-256)."""
    keys: dict[int, bytes] = {}
    for item in value.split(","):
        version_text, sep, encoded = item.strip().partition(":")
        if not sep or not version_text.isdigit() or int(version_text) < 1:
            raise KeyringError("entries must look like <version>:<base64 key>, versions from 1")
        version = int(version_text)
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise KeyringError(f"key version {version} is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise KeyringError(
                f"key version {version} must be {KEY_BYTES} bytes (AES-256), not {len(key)}"
            )
        if version in keys:
            raise KeyringError(f"key version {version} appears twice")
        keys[version] = key
    return keys


# Keyed by the raw setting, so a changed setting (a deploy, a test override) is parsed
# afresh while an unchanged one costs a dictionary lookup.
@functools.lru_cache(maxsize=4)
def _keyring_for(value: str) -> Keyring:
    return Keyring(parse_master_keys(value))


def current_keyring() -> Keyring:
    """The keyring configured now (parsed once per distinct setting value)."""
    value = getattr(settings, "LUMINA_MASTER_KEYS", None)
    if not isinstance(value, str) or not value.strip():
        raise KeyringError("LUMINA_MASTER_KEYS is empty: no key-encryption key is configured")
    return _keyring_for(value)
