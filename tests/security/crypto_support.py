"""Helpers for the encryption tests: deterministic keyrings and owner labels."""

from __future__ import annotations

import base64
import uuid


def key_b64(version: int, fill: int | None = None) -> str:
    """A recognisable 32-byte key for ``version`` (``fill`` picks other bytes)."""
    return base64.b64encode(bytes([fill if fill is not None else version]) * 32).decode()


def keyring(*versions: int, fills: dict[int, int] | None = None) -> str:
    fills = fills or {}
    return ",".join(f"{v}:{key_b64(v, fills.get(v))}" for v in versions)


def owner(field: str = "api_key") -> str:
    return f"providers.Provider:{uuid.uuid4()}:{field}"
